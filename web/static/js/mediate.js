// Mediation (/mediate). Residents open a case or join one with a code (a device token, no
// login) and see their cases; mediators and agencies sign in. Per case: who is in it, the join
// codes (filer and mediator), the rooms (joint and caucus) with a live chat, the agreement,
// and the settlement record. Contract §3 and docs/mediation.md.
//
// Robustness: every case copy carries `version` (the highest wins: pushes and answers can
// cross); every room keeps its messages by seq and re-subscribes with after_seq = the last
// contiguous seq after a reconnect, a chat.gap or a hole; every message goes out with a
// client_msg_id from a persisted outbox, so a re-send after a dropped link lands once.
import { t, getLang, onLangChange } from './i18n.js';
import { newId, store } from './api.js';
import { h, tid, notify, errorText, fmtTime, bindConn } from './ui.js';
import { staffSession } from './staff.js';
import { deviceSocket } from './device.js';
import { CASE_FINAL as FINAL, CASE_TALKING as TALKING } from './status.js';

// errors after which the outcome is unknown or the command may succeed later: keep and retry
const RETRY = new Set(['disconnected', 'timeout', 'offline', 'unavailable', 'rate_limited']);
const MAX_PARTIES = 10;
const K = {
  resident: 'helpline.mediate.resident', // this browser takes part in mediation as a resident
  open: 'helpline.mediate.open', // the case on screen
  outbox: 'helpline.mediate.outbox', // + '.' + account id: messages not yet acknowledged
};

const $ = (id) => document.getElementById(id);
const els = {
  login: $('login'),
  app: $('app'),
  myCasesLine: $('my-cases-line'),
  myCases: $('my-cases'),
  joinForm: $('join-form'),
  joinMsg: $('join-msg'),
  openForm: $('open-form'),
  openMsg: $('open-msg'),
  partyRows: $('party-rows'),
  addParty: $('add-party'),
  casesHeading: $('cases-heading'),
  newCase: $('new-case'),
  cases: $('cases'),
  casesEmpty: $('cases-empty'),
  casesMsg: $('cases-msg'),
  pickCase: $('pick-case'),
  case: $('case'),
  codesBox: $('codes-box'),
  codes: $('codes'),
  codesHint: $('codes-hint'),
  finalBox: $('final-box'),
  takeBox: $('take-box'),
  take: $('take'),
  notYours: $('not-yours'),
  tools: $('tools'),
  withdrawBox: $('withdraw-box'),
  withdrawConfirm: $('withdraw-confirm-box'),
  chat: $('chat'),
  chatOff: $('chat-off'),
  rooms: $('rooms'),
  roomHint: $('room-hint'),
  messages: $('messages'),
  messagesEmpty: $('messages-empty'),
  sendForm: $('send-form'),
  agCurrent: $('agreement-current'),
  agMeta: $('ag-meta'),
  agText: $('agreement-shown'),
  signatures: $('signatures'),
  proposeBox: $('propose-box'),
  proposeHint: $('propose-hint'),
  signBox: $('sign-box'),
  settlement: $('settlement'),
  caseMsg: $('case-msg'),
};

let mode = null; // 'staff' | 'resident' | null (nobody yet)
let active = null; // {sock, me: account}
const cases = new Map(); // id -> the newest case copy seen
let snapshotting = null; // ids pushed while a case list request is in flight
let openId = null; // the case on screen
let chat = newChat(null);
let outbox = []; // [{case_id, room, client_msg_id, body}] sent, not yet acknowledged
let flushing = false;
let flushTimer = null;
let residentSock = null;
let lastProposeCase = null; // the case whose proposal box was last pre-filled

function newChat(caseId) {
  return { caseId, rooms: new Map(), current: 'joint' };
}

function roomState(r) {
  if (!chat.rooms.has(r)) chat.rooms.set(r, { msgs: new Map(), last: 0, followed: false, loading: false, again: false, unread: 0 });
  return chat.rooms.get(r);
}

function fmtWhen(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(getLang(), { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

// ---- who am I to this case ----------------------------------------------------------------

const me = () => (active ? active.me : {});
const partyOf = (c) => (c.parties || []).find((p) => p.id === me().id) || null;
const isMediatorOf = (c) => me().role === 'mediator' && !!c.mediator && c.mediator.id === me().id;
const isAgencyOf = (c) => me().role === 'agency' && (c.agencies || []).some((a) => a.id === me().id);
const isFiler = (c) => { const p = partyOf(c); return !!p && !!p.filer; };
const canRead = (c) => !!partyOf(c) || isMediatorOf(c) || isAgencyOf(c);

function roomsFor(c) {
  if (!canRead(c)) return [];
  if (isMediatorOf(c)) return ['joint', ...(c.parties || []).map((p) => `caucus:${p.id}`)];
  if (partyOf(c)) return ['joint', `caucus:${me().id}`];
  return ['joint']; // agencies: the joint room only
}

function roomLabel(c, r) {
  if (r === 'joint') return t('mediate.joint');
  if (partyOf(c)) return t('mediate.caucusMine');
  const party = (c.parties || []).find((p) => `caucus:${p.id}` === r);
  return t('mediate.caucus', { name: party ? party.name : '' });
}

function roomHint(c, r) {
  if (r === 'joint') return t('mediate.jointHint');
  if (partyOf(c)) return t('mediate.caucusMineHint');
  const party = (c.parties || []).find((p) => `caucus:${p.id}` === r);
  if (party && party.via === 'sms') return t('mediate.caucusSmsHint', { name: party.name });
  return t('mediate.caucusHint', { name: party ? party.name : '' });
}

// ---- case copies: the highest version wins --------------------------------------------------

function newer(a, b) {
  return (b.version ?? 0) >= (a.version ?? 0);
}

function keepCase(c) {
  if (!c || !c.id) return null;
  if (snapshotting) snapshotting.add(c.id);
  const old = cases.get(c.id);
  if (old && !newer(old, c)) return old;
  cases.set(c.id, c);
  return c;
}

function onCase(c) {
  const kept = keepCase(c);
  renderCases();
  if (kept && kept.id === openId) {
    paintCase();
    followRooms();
  }
  return kept;
}

/** Replace the list with what the server says now, keeping any newer copy pushed meanwhile. */
async function loadCases() {
  const sock = active.sock;
  const role = me().role;
  snapshotting = new Set();
  const pushed = snapshotting;
  try {
    const asks = role === 'mediator' ? ['cases.watch', 'cases.mine'] : ['cases.mine'];
    const answers = await Promise.all(asks.map((type) => sock.request(type, {})));
    if (!active || active.sock !== sock) return;
    const fresh = new Map();
    for (const c of answers.flatMap((a) => a.cases || [])) {
      const o = fresh.get(c.id);
      if (!o || newer(o, c)) fresh.set(c.id, c);
    }
    for (const [id, old] of cases) {
      const n = fresh.get(id);
      if (n ? !newer(old, n) : pushed.has(id) || id === openId) fresh.set(id, old);
    }
    cases.clear();
    for (const [id, c] of fresh) cases.set(id, c);
    notify(els.casesMsg, '');
  } catch (e) {
    if (active && active.sock === sock) notify(els.casesMsg, `${t('mediate.casesFailed')} ${errorText(e)}`, 'error');
  } finally {
    if (snapshotting === pushed) snapshotting = null;
  }
  renderCases();
  if (mode === 'resident' && !openId) autoOpen();
  if (openId) {
    paintCase();
    followRooms();
  }
}

// ---- sessions -------------------------------------------------------------------------------

const staff = staffSession({
  page: 'mediate',
  roles: ['mediator', 'agency'],
  onWelcome: (w) => {
    if (residentSock) residentSock.stop(); // a staff sign-in replaces a resident visit
    if (!active || active.me.id !== w.account.id) resetCases();
    mode = 'staff';
    active = { sock: staff.sock, me: w.account };
    bindConn(staff.sock);
    els.newCase.hidden = true;
    resumeAfterWelcome(w);
  },
  onLogout: () => {
    mode = null;
    active = null;
    resetCases();
    store.del(K.open);
  },
});
listen(staff.sock);

function resetCases() {
  leaveRooms();
  cases.clear();
  openId = null;
  chat = newChat(null);
  outbox = [];
  lastProposeCase = null;
  renderCases();
  paintCase();
}

function resumeAfterWelcome(w) {
  loadOutbox();
  for (const c of w.open_cases || []) keepCase(c);
  if (!openId) {
    const saved = store.get(K.open);
    if (saved) openId = saved;
  }
  if (openId && chat.caseId !== openId) chat = newChat(openId);
  // the server ended our room feeds with the old connection: follow them again from our last seq
  for (const st of chat.rooms.values()) st.followed = false;
  renderCases();
  paintCase();
  loadCases();
  followRooms();
  flushOutbox();
}

function startResident() {
  if (!residentSock) {
    // the device token the help page uses too; a stale one is replaced unless staff signed in meanwhile
    residentSock = deviceSocket({ retryIf: () => mode !== 'staff' });
    listen(residentSock);
    residentSock.on('welcome', (w) => {
      if (mode === 'staff') return;
      if (!active || active.me.id !== w.account.id) resetCases();
      mode = 'resident';
      active = { sock: residentSock, me: w.account };
      els.newCase.hidden = false;
      resumeAfterWelcome(w);
    });
  }
  bindConn(residentSock);
  if (residentSock.stopped) residentSock.start();
  return residentSock;
}

function showResidentApp() {
  els.login.hidden = true;
  els.app.hidden = false;
}

function showResidentLanding() {
  els.app.hidden = true;
  els.login.hidden = false;
  paintMyCasesButton();
}

function paintMyCasesButton() {
  const n = mode === 'resident' ? cases.size : 0;
  els.myCasesLine.hidden = !n;
  els.myCases.textContent = t('mediate.myCasesButton', { n });
}

function autoOpen() {
  const saved = store.get(K.open);
  if (saved && cases.has(saved)) openCase(saved);
  else if (cases.size === 1) openCase([...cases.keys()][0]);
}

// ---- pushes -----------------------------------------------------------------------------------

function listen(sock) {
  const mine = () => active && active.sock === sock;
  sock.on('case.updated', (m) => { if (mine()) onCase(m.case); });
  sock.on('chat.message', (m) => {
    if (mine() && m.message) addMessages(m.message.case_id, m.message.room, [m.message], true);
  });
  sock.on('chat.gap', (m) => {
    if (mine() && m.case_id === chat.caseId) subscribe(m.room);
  });
}

// ---- the resident's forms ---------------------------------------------------------------------

function joinError(e) {
  if (e.code === 'not_found') return t('mediate.joinNotFound');
  if (e.code === 'conflict') return t('mediate.joinConflict');
  if (e.code === 'rate_limited') return t('mediate.joinRateLimited');
  if (e.code === 'forbidden') return t('mediate.joinForbidden');
  return `${t('mediate.joinFailed')} ${errorText(e)}`;
}

els.joinForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = tid('join-code');
  const code = input.value.trim();
  if (!code) {
    notify(els.joinMsg, t('mediate.codeMissing'), 'error');
    return;
  }
  const btn = tid('join');
  btn.disabled = true;
  notify(els.joinMsg, t('mediate.joining'), 'info');
  try {
    const r = await startResident().request('case.join', { join_code: code });
    store.set(K.resident, true);
    input.value = '';
    notify(els.joinMsg, '');
    onCase(r.case);
    showResidentApp();
    openCase(r.case.id);
  } catch (e) {
    notify(els.joinMsg, joinError(e), 'error');
  } finally {
    btn.disabled = false;
  }
});

function addPartyRow() {
  if (els.partyRows.children.length >= MAX_PARTIES) return;
  const label = (key, input) => h('label', { class: 'field' }, h('span', { data: { i18n: key }, text: t(key) }), input);
  const row = h('div', { class: 'party-row' },
    label('mediate.partyName', h('input', { testid: 'party-name', attrs: { maxlength: 100, autocomplete: 'off' } })),
    label('mediate.partyPhone', h('input', {
      testid: 'party-phone', attrs: { type: 'tel', maxlength: 32, autocomplete: 'off', inputmode: 'tel' },
    })),
    h('button', {
      class: 'btn btn-secondary btn-small remove-party', data: { i18nAriaLabel: 'mediate.removeParty', i18nTitle: 'mediate.removeParty' },
      attrs: { type: 'button', 'aria-label': t('mediate.removeParty'), title: t('mediate.removeParty') },
      text: '×', on: { click: () => { row.remove(); paintPartyRows(); } },
    }));
  els.partyRows.append(row);
  paintPartyRows();
  return row;
}

function paintPartyRows() {
  const rows = [...els.partyRows.children];
  for (const r of rows) r.querySelector('.remove-party').hidden = rows.length < 2;
  els.addParty.disabled = rows.length >= MAX_PARTIES;
}

els.addParty.addEventListener('click', () => {
  const row = addPartyRow();
  if (row) row.querySelector('input').focus();
});

els.openForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const category = tid('case-category').value;
  const summary = tid('case-summary').value.trim();
  const name = tid('my-name').value.trim();
  const others = [];
  for (const row of els.partyRows.children) {
    const n = row.querySelector('[data-testid=party-name]').value.trim();
    const phone = row.querySelector('[data-testid=party-phone]').value.replace(/[\s()-]/g, '');
    if (!n && !phone) continue;
    if (!n) {
      notify(els.openMsg, t('mediate.partyNeedsName'), 'error');
      return;
    }
    others.push(phone ? { name: n, phone } : { name: n });
  }
  if (!summary) {
    notify(els.openMsg, t('mediate.summaryMissing'), 'error');
    return;
  }
  if (!others.length) {
    notify(els.openMsg, t('mediate.othersMissing'), 'error');
    return;
  }
  const btn = tid('open-case');
  btn.disabled = true;
  notify(els.openMsg, t('mediate.opening'), 'info');
  const fields = { category, summary, other_parties: others };
  if (name) fields.name = name;
  // the same form sent again after a lost answer carries the same request_id: the server returns the
  // case it opened then instead of opening a second one
  const key = JSON.stringify(fields);
  if (!pendingOpen || pendingOpen.key !== key) pendingOpen = { key, id: newId() };
  fields.request_id = pendingOpen.id;
  try {
    const r = await startResident().request('case.open', fields);
    pendingOpen = null;
    store.set(K.resident, true);
    notify(els.openMsg, '');
    els.openForm.reset();
    els.partyRows.replaceChildren();
    addPartyRow();
    onCase(r.case);
    showResidentApp();
    openCase(r.case.id);
  } catch (e) {
    if (e.code === 'bad_request') {
      pendingOpen = null;
      notify(els.openMsg, t('mediate.openBad'), 'error');
    } else if (e.code === 'disconnected' || e.code === 'timeout') {
      // the case may have been opened: pressing open again with the same form is safe (same request_id)
      notify(els.openMsg, t('mediate.openUnknown'), 'error');
      store.set(K.resident, true);
      if (active && mode === 'resident') loadCases().then(paintMyCasesButton);
    } else notify(els.openMsg, `${t('mediate.openFailed')} ${errorText(e)}`, 'error');
  } finally {
    btn.disabled = false;
  }
});

let pendingOpen = null;   // { key, id }: a case.open whose answer never came

els.myCases.addEventListener('click', () => {
  showResidentApp();
  if (!openId) autoOpen();
});
els.newCase.addEventListener('click', showResidentLanding);

// ---- the case list ----------------------------------------------------------------------------

const byNewest = (a, b) => Date.parse(b.updated_at || b.created_at) - Date.parse(a.updated_at || a.created_at);
const byOldest = (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at);

function groups() {
  const list = [...cases.values()];
  const open = list.filter((c) => !FINAL.has(c.status));
  if (me().role === 'mediator') {
    const mine = (c) => isMediatorOf(c);
    return [
      ['mediate.groupMine', open.filter(mine).sort(byNewest)],
      ['mediate.groupWaiting', open.filter((c) => !c.mediator).sort(byOldest)],
      ['mediate.groupOthers', open.filter((c) => c.mediator && !mine(c)).sort(byNewest)],
      ['mediate.groupClosed', list.filter((c) => FINAL.has(c.status) && mine(c)).sort(byNewest)],
    ];
  }
  return [
    ['mediate.groupOpen', open.sort(byNewest)],
    ['mediate.groupClosed', list.filter((c) => FINAL.has(c.status)).sort(byNewest)],
  ];
}

function caseRow(c) {
  const others = (c.parties || []).length;
  return h('li', {}, h('button', {
    testid: 'case-row',
    class: `case-row${c.id === openId ? ' selected' : ''}`,
    data: { caseId: c.id, status: c.status },
    attrs: { type: 'button', 'aria-current': c.id === openId ? 'true' : false },
    on: {
      click: () => {
        openCase(c.id);
        if (window.matchMedia('(max-width: 899px)').matches) els.case.scrollIntoView({ block: 'start' }); // stacked layout
      },
    },
  },
  h('span', { class: 'row-top' },
    h('strong', { class: 'ref', text: c.ref_no }),
    h('span', { class: `badge case-${c.status}`, text: t(`case.${c.status}`) }),
    h('span', { class: 'cat', text: t(`casecat.${c.category}`) })),
  h('span', { class: 'summary', text: c.summary || '' }),
  h('span', { class: 'row-meta', text: t('mediate.rowMeta', { n: others, when: fmtWhen(c.created_at) }) })));
}

function renderCases() {
  const role = me().role;
  els.casesHeading.textContent = t(role === 'mediator' ? 'mediate.casesTitle' : role === 'agency' ? 'mediate.agencyCases' : 'mediate.myCases');
  const parts = [];
  let shown = 0;
  if (active) {
    for (const [key, list] of groups()) {
      if (!list.length) continue;
      shown += list.length;
      parts.push(h('h3', { class: 'group', text: `${t(key)} (${list.length})` }), h('ul', { class: 'case-list' }, list.map(caseRow)));
    }
  }
  els.cases.replaceChildren(...parts);
  els.casesEmpty.hidden = shown > 0;
  els.casesEmpty.textContent = t(role === 'mediator' ? 'mediate.casesEmpty' : role === 'agency' ? 'mediate.agencyEmpty' : 'mediate.myEmpty');
  paintMyCasesButton();
}

// ---- one case ----------------------------------------------------------------------------------

function openCase(id) {
  if (openId !== id || chat.caseId !== id) {
    leaveRooms();
    openId = id;
    chat = newChat(id);
    notify(els.caseMsg, '');
    els.withdrawConfirm.hidden = true;
  }
  store.set(K.open, id);
  renderCases();
  paintCase();
  followRooms();
}

function paintCase() {
  const c = openId ? cases.get(openId) : null;
  els.case.hidden = !c;
  els.pickCase.hidden = !!c || !active;
  if (!c) return;
  const you = me();
  const final = FINAL.has(c.status);
  const status = $('c-status');
  status.textContent = t(`case.${c.status}`);
  status.className = `badge case-${c.status}`;
  status.dataset.status = c.status;
  $('c-ref').textContent = c.ref_no;
  $('c-meta').textContent = t('mediate.meta', { cat: t(`casecat.${c.category}`), when: fmtWhen(c.created_at) });
  $('c-summary').textContent = c.summary || '';

  // who is in it: the joined parties, then those named but not joined yet
  const party = (p) => h('li', { class: p.id === you.id ? 'me' : '' },
    h('span', { class: 'name', text: p.name || t('mediate.unnamed') }),
    p.id === you.id ? h('span', { class: 'tag', text: t('mediate.you') }) : null,
    p.filer ? h('span', { class: 'tag', text: t('mediate.filer') }) : null,
    p.via === 'sms' ? h('span', { class: 'tag', text: t('mediate.viaSms') }) : null,
    p.phone ? h('span', { class: 'phone', text: p.phone }) : null,
    p.signed ? h('span', { class: 'tag tag-ok', text: `✓ ${t('mediate.signed')}` }) : null);
  const waiting = (c.invited || []).filter((i) => !i.joined).map((i) => h('li', { class: 'waiting' },
    h('span', { class: 'name', text: i.name }),
    h('span', { class: 'tag', text: t('mediate.notJoined') }),
    i.phone ? h('span', { class: 'phone', text: i.phone }) : null));
  $('c-parties').replaceChildren(...(c.parties || []).map(party), ...waiting);
  $('c-mediator').textContent = c.mediator ? c.mediator.name : t('mediate.noMediator');
  $('c-agencies').textContent = (c.agencies || []).map((a) => a.name).join(', ') || '—';

  // the join codes, for the filer and the case's mediator while someone has not joined
  const codes = (c.invited || []).filter((i) => i.join_code && !i.joined);
  els.codesBox.hidden = final || !codes.length;
  els.codesHint.textContent = t(isFiler(c) ? 'mediate.codesHint' : 'mediate.codesHintStaff', { url: `${location.origin}/mediate` });
  els.codes.replaceChildren(...codes.map((i) => h('li', { testid: 'invite-code', data: { code: i.join_code } },
    h('span', { class: 'name', text: i.name }),
    h('code', { class: 'code', text: i.join_code }))));

  els.finalBox.hidden = !final;
  if (final) {
    const parts = [t(`mediate.final.${c.status}`)];
    if (c.closed_at) parts.push(fmtWhen(c.closed_at));
    if (c.outcome_note) parts.push(c.outcome_note);
    els.finalBox.textContent = parts.join(' — ');
    els.finalBox.dataset.status = c.status;
  }

  const mediator = you.role === 'mediator';
  els.takeBox.hidden = !(mediator && !c.mediator && c.status === 'filed');
  els.notYours.hidden = !(mediator && !isMediatorOf(c));
  els.notYours.textContent = c.mediator ? t('mediate.handledBy', { name: c.mediator.name }) : t('mediate.takeToRead');
  els.tools.hidden = !(isMediatorOf(c) && !final);
  els.withdrawBox.hidden = !(isFiler(c) && !final);

  // the conversation
  const readable = canRead(c);
  els.chat.hidden = !readable;
  els.sendForm.hidden = final; // a closed case can still be read
  els.chatOff.hidden = !(readable && final);
  els.chatOff.textContent = t('mediate.closedChat');
  const rooms = roomsFor(c);
  if (!rooms.includes(chat.current)) chat.current = 'joint';
  paintTabs(c, rooms);
  paintMessages();

  paintAgreement(c);
}

function paintTabs(c = cases.get(openId), rooms = c ? roomsFor(c) : []) {
  els.rooms.replaceChildren(...rooms.map((r) => {
    const st = roomState(r);
    const selected = r === chat.current;
    return h('button', {
      testid: 'room-tab', class: `tab${selected ? ' active' : ''}${r === 'joint' ? '' : ' caucus'}`,
      data: { room: r }, attrs: { type: 'button', role: 'tab', 'aria-selected': String(selected) },
      on: { click: () => switchRoom(r) },
    }, roomLabel(c, r), st.unread && !selected ? h('span', { class: 'unread', text: String(st.unread) }) : null);
  }));
  els.roomHint.textContent = c && rooms.length ? roomHint(c, chat.current) : '';
}

function switchRoom(r) {
  chat.current = r;
  roomState(r).unread = 0;
  paintTabs();
  paintMessages(true);
  if (!roomState(r).followed) subscribe(r);
}

function paintAgreement(c) {
  const ag = c.agreement;
  const settled = c.status === 'settled';
  els.agCurrent.hidden = settled;
  els.settlement.hidden = !settled;
  const signatures = ag ? ag.signatures || [] : [];
  if (!settled) {
    els.agText.textContent = ag ? ag.text : t('mediate.noAgreement');
    els.agText.classList.toggle('empty', !ag);
    els.agMeta.textContent = ag ? t('mediate.proposedAt', { when: fmtWhen(ag.proposed_at) }) : '';
    els.agMeta.hidden = !ag;
    const byParty = new Map(signatures.map((s) => [s.party_id, s]));
    els.signatures.replaceChildren(...(ag ? (c.parties || []).map((p) => {
      const s = byParty.get(p.id);
      return h('li', { class: s || p.signed ? 'signed' : 'unsigned' },
        h('span', { class: 'name', text: p.name }), ' — ',
        s || p.signed
          ? h('span', { text: s ? t('mediate.signedAt', { when: fmtWhen(s.signed_at) }) : t('mediate.signed') })
          : h('span', { class: 'muted', text: t('mediate.notSigned') }));
    }) : []));
  } else {
    $('st-text').textContent = ag ? ag.text : '';
    $('st-signers').replaceChildren(...signatures.map((s) => h('li', {},
      h('span', { class: 'name', text: s.name }), ' — ',
      h('span', { text: t('mediate.signedAt', { when: fmtWhen(s.signed_at) }) }),
      s.via === 'sms' ? h('span', { class: 'tag', text: t('mediate.viaSms') }) : null)));
    const last = signatures.map((s) => s.signed_at).sort().pop();
    $('st-time').textContent = fmtWhen(c.closed_at || last);
    $('st-sha').textContent = c.settled_sha256 || (ag && ag.sha256) || '';
  }

  const proposer = isMediatorOf(c) && TALKING.has(c.status);
  els.proposeBox.hidden = !proposer;
  if (proposer) {
    const area = tid('agreement-text');
    if (lastProposeCase !== c.id) {
      lastProposeCase = c.id;
      if (!area.value && ag) area.value = ag.text; // revise from the current text
    }
    $('propose-label').textContent = t(ag ? 'mediate.reviseLabel' : 'mediate.agreementLabel');
    const othersJoined = (c.parties || []).length >= 2;
    tid('propose').disabled = !othersJoined;
    const hint = !othersJoined ? t('mediate.proposeWait') : signatures.length ? t('mediate.proposeClears') : '';
    els.proposeHint.textContent = hint;
    els.proposeHint.hidden = !hint;
  }
  const p = partyOf(c);
  els.signBox.hidden = !(p && ag && c.status === 'agreement_proposed' && !p.signed);
}

// ---- rooms and messages ---------------------------------------------------------------------------

function followRooms() {
  const c = openId ? cases.get(openId) : null;
  if (!c || !active || chat.caseId !== c.id) return;
  for (const r of roomsFor(c)) {
    const st = roomState(r);
    if (!st.followed && !st.loading) subscribe(r);
  }
}

function leaveRooms() {
  if (!active || !chat.caseId) return;
  for (const [r, st] of chat.rooms) {
    if (st.followed) active.sock.request('chat.unsubscribe', { case_id: chat.caseId, room: r }, { waitMs: 0 }).catch(() => {});
  }
}

async function subscribe(r) {
  if (!active || !chat.caseId) return;
  const { sock } = active;
  const mine = chat;
  const st = roomState(r);
  if (st.loading) {
    st.again = true;
    return;
  }
  st.loading = true;
  try {
    for (;;) {
      const res = await sock.request('chat.subscribe', { case_id: mine.caseId, room: r, after_seq: st.last });
      if (chat !== mine || !active || active.sock !== sock) return;
      const list = res.messages || [];
      addMessages(mine.caseId, r, list);
      st.followed = true;
      if (!res.has_more || !list.length) break; // else page on from the last seq received
    }
  } catch (e) {
    // a dropped link is picked up again at the next welcome
    if (chat === mine && !RETRY.has(e.code)) notify(els.caseMsg, `${t('mediate.chatFailed')} ${errorText(e)}`, 'error');
  } finally {
    st.loading = false;
    if (st.again && chat === mine) {
      st.again = false;
      subscribe(r);
    }
  }
}

function addMessages(caseId, r, list, live = false) {
  if (!caseId || caseId !== chat.caseId) return;
  const st = roomState(r);
  let fresh = 0;
  for (const m of list) {
    if (!m || typeof m.seq !== 'number' || st.msgs.has(m.seq)) continue; // each seq once
    st.msgs.set(m.seq, m);
    const own = m.sender && m.sender.id === me().id;
    if (own && m.client_msg_id) dropOutbox(m.client_msg_id);
    if (!own) fresh += 1;
  }
  while (st.msgs.has(st.last + 1)) st.last += 1;
  // a live message beyond a hole: fetch what is missing from the last contiguous seq
  if (live && st.msgs.size > st.last) subscribe(r);
  if (r !== chat.current && fresh) {
    st.unread += fresh;
    paintTabs();
  }
  if (r === chat.current) paintMessages();
}

function messageItem(m) {
  const own = m.sender && m.sender.id === me().id;
  const role = (m.sender && m.sender.role) || 'resident';
  return h('li', { testid: 'message', class: `message${own ? ' mine' : ''} from-${role}`, data: { seq: m.seq } },
    h('div', { class: 'meta' },
      h('span', { class: 'sender', text: own ? t('mediate.you') : (m.sender && m.sender.name) || '' }),
      role !== 'resident' ? h('span', { class: 'tag', text: t(`role.${role}`) }) : null,
      m.via === 'sms' ? h('span', { class: 'tag', text: t('mediate.viaSms') }) : null,
      h('time', { attrs: { datetime: m.sent_at, title: fmtWhen(m.sent_at) }, text: fmtTime(m.sent_at) })),
    h('p', { class: 'body', text: m.body })); // always as text
}

function pendingItem(o) {
  return h('li', { testid: 'message-pending', class: 'message mine pending' },
    h('div', { class: 'meta' }, h('span', { class: 'sender', text: t('mediate.you') }),
      h('span', { class: 'tag', text: t('mediate.sending') })),
    h('p', { class: 'body', text: o.body }));
}

function paintMessages(toBottom = false) {
  const box = els.messages;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const st = chat.caseId ? roomState(chat.current) : null;
  const list = st ? [...st.msgs.values()].sort((a, b) => a.seq - b.seq) : [];
  const pending = outbox.filter((o) => o.case_id === chat.caseId && o.room === chat.current);
  box.replaceChildren(...list.map(messageItem), ...pending.map(pendingItem));
  const empty = list.length + pending.length === 0;
  els.messagesEmpty.hidden = !empty || !st || !st.followed;
  box.hidden = empty && !!st && st.followed; // say "no messages yet" instead of an empty box
  if (toBottom || atBottom || pending.length) box.scrollTop = box.scrollHeight;
}

// ---- the outbox: every message leaves with a client_msg_id and is re-sent until acknowledged ----

function outboxKey() {
  return `${K.outbox}.${me().id}`;
}

function loadOutbox() {
  outbox = (active && store.get(outboxKey())) || [];
}

function saveOutbox() {
  if (active) store.set(outboxKey(), outbox);
}

function dropOutbox(clientMsgId) {
  const n = outbox.length;
  outbox = outbox.filter((o) => o.client_msg_id !== clientMsgId);
  if (outbox.length !== n) saveOutbox();
}

async function flushOutbox() {
  if (flushing || !active) return;
  flushing = true;
  const { sock } = active;
  try {
    // one at a time, in order: the room's order is the order they were written
    while (outbox.length && active && active.sock === sock) {
      const o = outbox[0];
      try {
        const r = await sock.request('chat.send', { case_id: o.case_id, room: o.room, client_msg_id: o.client_msg_id, body: o.body });
        dropOutbox(o.client_msg_id);
        if (r.message) addMessages(r.message.case_id, r.message.room, [r.message]);
      } catch (e) {
        if (RETRY.has(e.code)) {
          clearTimeout(flushTimer);
          flushTimer = setTimeout(flushOutbox, 3000);
          break;
        }
        dropOutbox(o.client_msg_id); // refused: sending it again would not help
        if (o.case_id === chat.caseId) {
          notify(els.caseMsg, `${t('mediate.sendFailed')} ${errorText(e)}`, 'error');
          const input = tid('message-input');
          if (!input.value) input.value = o.body; // give the words back
        }
      }
      if (o.case_id === chat.caseId) paintMessages();
    }
  } finally {
    flushing = false;
  }
}

els.sendForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = tid('message-input');
  const body = input.value.trim();
  if (!body || !chat.caseId || !active) return;
  outbox.push({ case_id: chat.caseId, room: chat.current, client_msg_id: newId(), body });
  saveOutbox();
  input.value = '';
  notify(els.caseMsg, '');
  paintMessages(true);
  flushOutbox();
});

tid('message-input').addEventListener('keydown', (ev) => {
  // Ctrl/⌘+Enter sends; Enter alone makes a new line (messages can be long)
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    els.sendForm.requestSubmit();
  }
});

// ---- case commands ---------------------------------------------------------------------------------

async function act(btn, type, fields, messages = {}) {
  notify(els.caseMsg, '');
  if (btn) btn.disabled = true;
  try {
    const r = await active.sock.request(type, fields);
    if (r.case) onCase(r.case);
    return r;
  } catch (e) {
    const key = messages[e.code];
    notify(els.caseMsg, key ? t(key) : errorText(e), 'error');
    return null;
  } finally {
    if (btn) btn.disabled = false;
  }
}

els.take.addEventListener('click', () => act(els.take, 'case.take', { case_id: openId }, { conflict: 'mediate.takeConflict' }));

$('invite-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = tid('agency-id');
  const id = input.value.trim();
  if (!/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(id)) {
    notify(els.caseMsg, t('mediate.agencyIdBad'), 'error');
    return;
  }
  const r = await act(tid('invite'), 'case.invite', { case_id: openId, account_id: id }, {
    not_found: 'mediate.agencyNotFound', bad_request: 'mediate.agencyNotAgency',
  });
  if (r) {
    input.value = '';
    notify(els.caseMsg, t('mediate.invited'), 'ok');
  }
});

$('close-case-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const fields = { case_id: openId, outcome: tid('close-outcome').value };
  const note = tid('close-note').value.trim();
  if (note) fields.note = note;
  if (await act(tid('close-case'), 'case.close', fields)) tid('close-note').value = '';
});

$('withdraw').addEventListener('click', () => {
  els.withdrawConfirm.hidden = false;
  tid('withdraw-confirm').focus();
});
$('withdraw-cancel').addEventListener('click', () => { els.withdrawConfirm.hidden = true; });
tid('withdraw-confirm').addEventListener('click', async () => {
  if (await act(tid('withdraw-confirm'), 'case.withdraw', { case_id: openId })) els.withdrawConfirm.hidden = true;
});

tid('propose').addEventListener('click', async () => {
  const text = tid('agreement-text').value.trim();
  if (!text) {
    notify(els.caseMsg, t('mediate.agreementMissing'), 'error');
    return;
  }
  await act(tid('propose'), 'agreement.propose', { case_id: openId, text });
});

tid('sign').addEventListener('click', () => {
  const c = cases.get(openId);
  const fields = { case_id: openId };
  // sign exactly the text on screen: the server refuses if the proposal changed meanwhile
  if (c && c.agreement && c.agreement.id) fields.agreement_id = c.agreement.id;
  act(tid('sign'), 'agreement.sign', fields, { conflict: 'mediate.signConflict' });
});

// ---- start -------------------------------------------------------------------------------------------

onLangChange(() => {
  renderCases();
  paintCase();
});

addPartyRow();
if (!staff.account() && store.get(K.resident)) {
  // a resident coming back: their cases, straight away
  showResidentApp();
  startResident();
}
