// Mediation: mediators and agencies sign in and see open cases; residents join a case
// with its join code. Per case: rooms (joint and caucus), the chat, the agreement.
import { t, onLangChange } from './i18n.js';
import { Socket } from './ws.js';
import { postJSON, newId, store } from './api.js';
import { h, tid, notify, errorText, fmtTime, bindConn } from './ui.js';
import { staffSession } from './staff.js';

const RESIDENT = { device: 'helpline.device_id', token: 'helpline.resident.token', joined: 'helpline.mediate.joined' };

const els = {
  login: document.getElementById('login'),
  app: document.getElementById('app'),
  casesPanel: document.getElementById('cases-panel'),
  cases: document.getElementById('cases'),
  casesEmpty: document.getElementById('cases-empty'),
  casesMsg: document.getElementById('cases-msg'),
  case: document.getElementById('case'),
  rooms: document.getElementById('rooms'),
  messages: document.getElementById('messages'),
  take: document.getElementById('take'),
  proposeBox: document.getElementById('propose-box'),
  caseMsg: document.getElementById('case-msg'),
};

let active = null; // {sock, me: account}
const cases = new Map();
let openCase = null;
let room = 'joint';
let seen = new Map(); // room -> [messages]

// ---- staff (mediators, agencies) -------------------------------------------------------

const staff = staffSession({
  page: 'mediate',
  roles: ['mediator', 'agency', 'admin'],
  onWelcome: async (w) => {
    active = { sock: staff.sock, me: w.account };
    els.casesPanel.hidden = false;
    try {
      // mediators watch every open case; agencies list the cases they were invited to
      const list = w.account.role === 'mediator' ? 'cases.watch' : 'cases.mine';
      const r = await staff.sock.request(list, {});
      cases.clear();
      for (const c of r.cases || []) cases.set(c.id, c);
      notify(els.casesMsg, '');
    } catch (e) {
      notify(els.casesMsg, `${t('mediate.casesFailed')} ${errorText(e)}`, 'error');
    }
    renderCases();
    if (openCase) openCaseView(cases.get(openCase.id) || openCase);
  },
  onLogout: () => {
    active = null;
    openCase = null;
    cases.clear();
    renderCases();
    els.case.hidden = true;
  },
});
listen(staff.sock);

// ---- residents (join code) ---------------------------------------------------------------

async function residentToken() {
  const saved = store.get(RESIDENT.token);
  if (saved) return saved;
  let device = store.get(RESIDENT.device);
  if (!device) {
    device = newId();
    store.set(RESIDENT.device, device);
  }
  const r = await postJSON('/api/auth/device', { device_id: device });
  store.set(RESIDENT.token, r.token);
  return r.token;
}

let residentSock = null;
async function joinAsResident(code) {
  if (!residentSock) {
    residentSock = new Socket({ getToken: residentToken });
    bindConn(residentSock);
    listen(residentSock);
    residentSock.on('welcome', async (w) => {
      active = { sock: residentSock, me: w.account };
      try {
        const r = await residentSock.request('case.join', { join_code: store.get(RESIDENT.joined) });
        els.login.hidden = true;
        els.app.hidden = false;
        els.casesPanel.hidden = true;
        openCaseView(r.case);
      } catch (e) {
        store.del(RESIDENT.joined);
        notify(document.getElementById('join-msg'), `${t('mediate.joinFailed')} ${errorText(e)}`, 'error');
      }
    });
    residentSock.on('unauthorized', () => {
      store.del(RESIDENT.token);
      setTimeout(() => residentSock.restart(), 1000);
    });
  }
  store.set(RESIDENT.joined, code);
  residentSock.restart();
}

document.getElementById('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const code = tid('join-code').value.trim();
  if (code) joinAsResident(code);
});

// ---- cases ----------------------------------------------------------------------------------

function listen(sock) {
  sock.on('case.updated', (m) => {
    if (sock !== (active && active.sock)) return;
    const old = cases.get(m.case.id) || (openCase && openCase.id === m.case.id ? openCase : null);
    if (old && old.version !== undefined && m.case.version < old.version) return; // a late, older copy
    cases.set(m.case.id, m.case);
    renderCases();
    if (openCase && openCase.id === m.case.id) paintCase(m.case);
  });
  sock.on('chat.message', (m) => {
    if (sock !== (active && active.sock)) return;
    addMessages(m.message.room, [m.message]);
  });
}

function renderCases() {
  els.cases.replaceChildren(...[...cases.values()].map((c) => h('li', {},
    h('button', {
      testid: 'case-row', class: 'case-row', data: { caseId: c.id, status: c.status },
      attrs: { type: 'button' }, on: { click: () => openCaseView(c) },
    },
    h('strong', { class: 'ref', text: c.ref_no }), ' ',
    h('span', { class: 'badge', text: t(`case.${c.status}`) }), ' ',
    h('span', { text: t(`casecat.${c.category}`) }), ' · ',
    h('span', { class: 'summary', text: c.summary || '' })))));
  els.casesEmpty.hidden = cases.size > 0;
}

function roomsFor(c) {
  const me = active.me;
  if (me.role === 'agency') return ['joint'];
  if (me.role === 'resident') return ['joint', `caucus:${me.id}`];
  return ['joint', ...(c.parties || []).map((p) => `caucus:${p.id}`)];
}

function roomName(c, r) {
  if (r === 'joint') return t('mediate.joint');
  if (active && active.me.role === 'resident') return t('mediate.caucusMine');
  const id = r.slice('caucus:'.length);
  const party = (c.parties || []).find((p) => p.id === id);
  return t('mediate.caucus', { name: party ? party.name : '' });
}

function openCaseView(c) {
  const changed = !openCase || openCase.id !== c.id;
  openCase = c;
  if (changed) {
    seen = new Map();
    room = 'joint';
  }
  els.case.hidden = false;
  paintCase(c);
  if (canTalk(c)) subscribe(room);
}

/** Mediators read and write once the case is theirs; parties and agencies always. */
function canTalk(c) {
  const me = active ? active.me : null;
  if (!me) return false;
  return me.role !== 'mediator' || (!!c.mediator && c.mediator.id === me.id);
}

function paintCase(c) {
  if (openCase && openCase.id === c.id && c.version < openCase.version) return;
  openCase = c;
  const me = active ? active.me : {};
  document.getElementById('c-ref').textContent = c.ref_no;
  document.getElementById('c-status').textContent = t(`case.${c.status}`);
  document.getElementById('c-summary').textContent = c.summary || '';
  document.getElementById('c-parties').replaceChildren(...(c.parties || []).map((p) =>
    h('li', { text: `${p.name}${p.signed ? ` — ${t('mediate.signed')}` : ''}` })));
  els.take.hidden = !(me.role === 'mediator' && !c.mediator);
  const talk = canTalk(c);
  els.rooms.hidden = !talk;
  els.messages.hidden = !talk;
  document.getElementById('send-form').hidden = !talk;
  els.rooms.replaceChildren(...roomsFor(c).map((r) => h('button', {
    testid: 'room-tab', class: `tab${r === room ? ' active' : ''}`,
    data: { room: r }, attrs: { type: 'button', role: 'tab', 'aria-selected': String(r === room) },
    text: roomName(c, r), on: { click: () => subscribe(r) },
  })));
  document.getElementById('agreement-shown').textContent = c.agreement ? c.agreement.text : t('mediate.noAgreement');
  const isMediator = me.role === 'mediator' && c.mediator && c.mediator.id === me.id;
  els.proposeBox.hidden = !isMediator;
  const party = (c.parties || []).find((p) => p.id === me.id);
  tid('sign').hidden = !(party && c.agreement && !party.signed);
  paintMessages();
}

async function subscribe(r) {
  room = r;
  if (openCase) paintCase(openCase);
  const have = seen.get(r) || [];
  const after = have.length ? have[have.length - 1].seq : 0;
  try {
    const res = await active.sock.request('chat.subscribe', { case_id: openCase.id, room: r, after_seq: after });
    addMessages(r, res.messages || []);
  } catch (e) {
    notify(els.caseMsg, errorText(e), 'error');
  }
}

function addMessages(r, list) {
  const have = seen.get(r) || [];
  const bySeq = new Map(have.map((m) => [m.seq, m]));
  for (const m of list) bySeq.set(m.seq, m);
  seen.set(r, [...bySeq.values()].sort((a, b) => a.seq - b.seq));
  if (r === room) paintMessages();
}

function paintMessages() {
  els.messages.replaceChildren(...(seen.get(room) || []).map((m) => h('li', { testid: 'message', class: 'message' },
    h('span', { class: 'sender', text: m.sender ? m.sender.name : '' }), ' ',
    h('time', { attrs: { datetime: m.sent_at }, text: fmtTime(m.sent_at) }),
    h('p', { class: 'body', text: m.body }))));
  els.messages.scrollTop = els.messages.scrollHeight;
}

async function act(type, fields) {
  notify(els.caseMsg, '');
  try {
    const r = await active.sock.request(type, fields);
    if (r.case) paintCase(r.case);
    return r;
  } catch (e) {
    notify(els.caseMsg, errorText(e), 'error');
    return null;
  }
}

document.getElementById('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = tid('message-input');
  const body = input.value.trim();
  if (!body || !openCase) return;
  const r = await act('chat.send', { case_id: openCase.id, room, client_msg_id: newId(), body });
  if (r && r.message) {
    input.value = '';
    addMessages(r.message.room, [r.message]);
  }
});
els.take.addEventListener('click', async () => {
  if (await act('case.take', { case_id: openCase.id })) subscribe(room);
});
tid('propose').addEventListener('click', () => {
  const text = tid('agreement-text').value.trim();
  if (text) act('agreement.propose', { case_id: openCase.id, text });
});
tid('sign').addEventListener('click', () => {
  const fields = { case_id: openCase.id };
  // sign exactly the text on screen: the server refuses if the proposal changed meanwhile
  if (openCase.agreement && openCase.agreement.id) fields.agreement_id = openCase.agreement.id;
  act('agreement.sign', fields);
});

onLangChange(() => {
  renderCases();
  if (openCase) paintCase(openCase);
});

if (!staff.account() && store.get(RESIDENT.joined)) joinAsResident(store.get(RESIDENT.joined));
