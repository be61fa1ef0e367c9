// Mediation (/mediate). Residents open a case or join one with a code (a device token, no
// login) and see their cases; mediators, the front desk (clerks) and agencies sign in. Per case: who is in it, the join
// codes (filer and mediator), the rooms (joint and caucus) with a live chat, the agreement,
// and the settlement record. Contract §3 and docs/mediation.md.
//
// Robustness: every case copy carries `version` (the highest wins: pushes and answers can
// cross); every room keeps its messages by seq and re-subscribes with after_seq = the last
// contiguous seq after a reconnect, a chat.gap or a hole; every message goes out with a
// client_msg_id from a persisted outbox, so a re-send after a dropped link lands once.
//
// The page in files: mediate-state.js the state and its rules (no DOM, tested with node --test),
// mediate-view.js the painting, mediate-chat.js the rooms and the outbox, mediate-forms.js the
// resident's landing, mediate-visit.js the staff's form for visitors at the counter; this file
// holds the page state, the sessions, the pushes and the commands.
import { t, onLangChange } from './i18n.js';
import { store } from './api.js';
import { tid, notify, errorText, bindConn } from './ui.js';
import { staffSession } from './staff.js';
import { deviceSocket, deviceToken, saveResidentToken } from './device.js';
import { wirePhoneForm } from './mediate-phone.js';
import { CaseBook, Chat, Outbox } from './mediate-state.js';
import { $, els, createView } from './mediate-view.js';
import { createChat } from './mediate-chat.js';
import { createResidentForms } from './mediate-forms.js';
import { createVisitForm } from './mediate-visit.js';

const K = {
  resident: 'helpline.mediate.resident', // this browser takes part in mediation as a resident
  open: 'helpline.mediate.open', // the case on screen
};

// The page state, shared by the mediate-*.js modules (they are handed S, and read it live).
const S = {
  mode: null, // 'staff' | 'resident' | null (nobody yet)
  active: null, // {sock, me: account}
  book: new CaseBook(), // the newest copy of every case seen
  openId: null, // the case on screen
  chat: new Chat(null), // the rooms of the case on screen
  outbox: new Outbox(), // messages sent, not yet acknowledged
  lastProposeCase: null, // the case whose proposal box was last pre-filled
  lastAdded: null, // {caseId, name, join_code, texted}: the party this browser added last (its code shown)
  claimNext: false, // after a phone code: take the parties named with that phone, once the socket is live
  feedbackCase: null, // the closed case whose satisfaction question is on screen (issue 15)
  feedbackScore: 0, // the score picked there, 1-5 (0: none yet)
  me: () => (S.active ? S.active.me : {}),
};
let residentSock = null;

const view = createView(S, { openCase: (id) => openCase(id), switchRoom: (r) => chat.switchRoom(r) });
const chat = createChat(S, view);

// ---- case copies: the highest version wins --------------------------------------------------

function onCase(c) {
  const kept = S.book.keep(c);
  view.renderCases();
  if (kept && kept.id === S.openId) {
    view.paintCase();
    chat.followRooms();
  }
  return kept;
}

/** Replace the list with what the server says now, keeping any newer copy pushed meanwhile. */
async function loadCases() {
  const sock = S.active.sock;
  const role = S.me().role;
  const snapshot = S.book.beginSnapshot();
  try {
    const asks = role === 'mediator' ? ['cases.watch', 'cases.mine'] : ['cases.mine'];
    const answers = await Promise.all(asks.map((type) => sock.request(type, {})));
    if (!S.active || S.active.sock !== sock) return;
    S.book.applySnapshot(snapshot, answers.map((a) => a.cases || []), S.openId);
    notify(els.casesMsg, '');
  } catch (e) {
    if (S.active && S.active.sock === sock) notify(els.casesMsg, `${t('mediate.casesFailed')} ${errorText(e)}`, 'error');
  } finally {
    S.book.endSnapshot(snapshot);
  }
  view.renderCases();
  if (S.mode === 'resident' && !S.openId) autoOpen();
  if (S.openId) {
    view.paintCase();
    chat.followRooms();
  }
}

// ---- sessions -------------------------------------------------------------------------------

// mediators and the front desk (clerk) open cases for people at the counter (issue 13)
const visit = createVisitForm(S, { onCase, openCase: (id) => openCase(id) });

const staff = staffSession({
  page: 'mediate',
  roles: ['mediator', 'agency', 'clerk'],
  onWelcome: (w) => {
    if (residentSock) residentSock.stop(); // a staff sign-in replaces a resident visit
    if (!S.active || S.active.me.id !== w.account.id) resetCases();
    S.mode = 'staff';
    S.active = { sock: staff.sock, me: w.account };
    bindConn(staff.sock);
    els.newCase.hidden = true;
    visit.setRole(w.account.role);
    resumeAfterWelcome(w);
  },
  onLogout: () => {
    visit.setRole(null);
    S.mode = null;
    S.active = null;
    resetCases();
    store.del(K.open);
  },
});
listen(staff.sock);

function resetCases() {
  chat.leaveRooms();
  S.book.clear();
  S.openId = null;
  S.chat = new Chat(null);
  S.outbox = new Outbox();
  S.lastProposeCase = null;
  view.renderCases();
  view.paintCase();
}

function resumeAfterWelcome(w) {
  chat.loadOutbox();
  for (const c of w.open_cases || []) S.book.keep(c);
  if (!S.openId) {
    const saved = store.get(K.open);
    if (saved) S.openId = saved;
  }
  if (S.openId && S.chat.caseId !== S.openId) S.chat = new Chat(S.openId);
  // the server ended our room feeds with the old connection: follow them again from our last seq
  S.chat.lostFeeds();
  view.renderCases();
  view.paintCase();
  loadCases();
  chat.followRooms();
  chat.flushOutbox();
}

function startResident() {
  if (!residentSock) {
    // the device token the help page uses too; a stale one is replaced unless staff signed in meanwhile
    residentSock = deviceSocket({ retryIf: () => S.mode !== 'staff' });
    listen(residentSock);
    residentSock.on('welcome', (w) => {
      if (S.mode === 'staff') return;
      if (!S.active || S.active.me.id !== w.account.id) resetCases();
      S.mode = 'resident';
      S.active = { sock: residentSock, me: w.account };
      els.newCase.hidden = false;
      resumeAfterWelcome(w);
      if (S.claimNext) claimByPhone();
    });
  }
  bindConn(residentSock);
  if (residentSock.stopped) residentSock.start();
  return residentSock;
}

// ---- back into a case by a phone code (docs/mediation.md, "Back into a case") -------------------

/** Use the verified account's token from now on: the resident socket signs in again with it. */
function useToken(token) {
  saveResidentToken(token);
  store.set(K.resident, true);
  const running = !!residentSock && !residentSock.stopped;
  const sock = startResident();
  if (running) sock.restart();
}

/** The parties named with this phone that nobody joined become this account's; then the list. */
async function claimByPhone() {
  S.claimNext = false;
  const sock = residentSock;
  try {
    const r = await sock.request('cases.claim', {});
    for (const c of r.cases || []) onCase(c);
    await loadCases();
    const words = [];
    if (!S.book.size) words.push(t('mediate.claimNone'));
    if (r.held_by_others) words.push(t('mediate.claimHeld', { n: r.held_by_others }));
    notify(els.casesMsg, words.join(' '), 'info');
  } catch (e) {
    notify(els.casesMsg, `${t('mediate.casesFailed')} ${errorText(e)}`, 'error');
  }
}

wirePhoneForm('reclaim', {
  onVerified: (r) => {
    S.claimNext = true;
    useToken(r.token);
    forms.showResidentApp();
    return '';
  },
});
wirePhoneForm('keep', {
  keep: true,
  onVerified: (r) => {
    useToken(r.token);
    return t('mediate.keepLinked');
  },
});

function autoOpen() {
  const id = S.book.autoOpenId(store.get(K.open));
  if (id !== null) openCase(id);
}

const forms = createResidentForms(S, {
  view, startResident, onCase, openCase, loadCases, autoOpen,
  becameResident: () => store.set(K.resident, true),
});

// ---- pushes -----------------------------------------------------------------------------------

function listen(sock) {
  const mine = () => S.active && S.active.sock === sock;
  sock.on('case.updated', (m) => { if (mine()) onCase(m.case); });
  sock.on('chat.message', (m) => {
    if (mine() && m.message) chat.addMessages(m.message.case_id, m.message.room, [m.message], true);
  });
  sock.on('chat.gap', (m) => {
    if (mine() && m.case_id === S.chat.caseId) chat.subscribe(m.room);
  });
}

// ---- one case ----------------------------------------------------------------------------------

function openCase(id) {
  if (S.openId !== id || S.chat.caseId !== id) {
    chat.leaveRooms();
    S.openId = id;
    S.chat = new Chat(id);
    notify(els.caseMsg, '');
    for (const m of document.querySelectorAll('#case .local-msg, #chat-msg')) notify(m, '');
    els.withdrawConfirm.hidden = true;
    $('close-case-confirm-box').hidden = true;
    tid('close-case').hidden = false;
  }
  store.set(K.open, id);
  view.renderCases();
  view.paintCase();
  chat.followRooms();
}

// ---- case commands ---------------------------------------------------------------------------------

/** Where a control's result or error is said: beside it (its [data-local-msg] box), else under the case. */
function msgFor(btn) {
  const box = btn && btn.closest('[data-local-msg]');
  return (box && box.querySelector('.local-msg')) || els.caseMsg;
}

async function act(btn, type, fields, messages = {}) {
  const where = msgFor(btn);
  notify(els.caseMsg, '');
  notify(where, '');
  if (btn) btn.disabled = true;
  try {
    const r = await S.active.sock.request(type, fields);
    if (r.case) onCase(r.case);
    return r;
  } catch (e) {
    const key = messages[e.code];
    notify(where, key ? t(key) : errorText(e), 'error');
    return null;
  } finally {
    if (btn) btn.disabled = false;
  }
}

els.take.addEventListener('click', () => act(els.take, 'case.take', { case_id: S.openId }, { conflict: 'mediate.takeConflict' }));

// the satisfaction question of a closed case (issue 15): pick 1-5, add a comment if you like, send once
for (const b of els.feedbackBox.querySelectorAll('[data-score]')) {
  b.addEventListener('click', () => {
    S.feedbackScore = Number(b.dataset.score);
    view.paintCase();
  });
}
els.feedbackBox.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const send = tid('feedback-send');
  if (!S.feedbackScore) {
    notify(msgFor(send), t('mediate.feedbackPick'), 'error');
    return;
  }
  const comment = tid('feedback-comment').value.trim();
  const r = await act(send, 'case.feedback', { case_id: S.openId, score: S.feedbackScore, ...(comment ? { comment } : {}) });
  if (r) tid('feedback-comment').value = '';
});

$('invite-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = tid('agency-id');
  const id = input.value.trim();
  if (!/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(id)) {
    notify(msgFor(input), t('mediate.agencyIdBad'), 'error');
    return;
  }
  const r = await act(tid('invite'), 'case.invite', { case_id: S.openId, account_id: id }, {
    not_found: 'mediate.agencyNotFound', bad_request: 'mediate.agencyNotAgency',
  });
  if (r) {
    input.value = '';
    notify(msgFor(input), t('mediate.invited'), 'ok');
  }
});

// a party named after filing: the code is shown to the one who added it, beside the form
$('add-party-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const nameIn = tid('new-party-name');
  const phoneIn = tid('new-party-phone');
  const name = nameIn.value.trim();
  const phone = phoneIn.value.replace(/[\s().-]/g, '');
  if (!name) {
    notify(msgFor(nameIn), t('mediate.partyNeedsName'), 'error');
    nameIn.focus();
    return;
  }
  const caseId = S.openId;
  const fields = { case_id: caseId, name };
  if (phone) fields.phone = phone;
  const r = await act(tid('add-party-submit'), 'case.add_party', fields, {
    bad_request: 'mediate.addPartyBad', conflict: 'mediate.addPartyConflict', forbidden: 'mediate.addPartyForbidden',
  });
  if (r && r.added) {
    nameIn.value = '';
    phoneIn.value = '';
    S.lastAdded = { caseId, ...r.added };
    view.paintCase();
  }
});

// closing and signing are final: each asks first, with "keep" where the button was
$('close-case-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  $('close-case-confirm-box').hidden = false;
  tid('close-case').hidden = true;
  tid('close-case-keep').focus();
});
tid('close-case-keep').addEventListener('click', () => {
  $('close-case-confirm-box').hidden = true;
  tid('close-case').hidden = false;
});
tid('close-case-confirm').addEventListener('click', async () => {
  $('close-case-confirm-box').hidden = true;
  tid('close-case').hidden = false;
  const fields = { case_id: S.openId, outcome: tid('close-outcome').value };
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
  if (await act(tid('withdraw-confirm'), 'case.withdraw', { case_id: S.openId })) els.withdrawConfirm.hidden = true;
});

tid('propose').addEventListener('click', async () => {
  const text = tid('agreement-text').value.trim();
  if (!text) {
    notify(msgFor(tid('propose')), t('mediate.agreementMissing'), 'error');
    return;
  }
  await act(tid('propose'), 'agreement.propose', { case_id: S.openId, text });
});

tid('sign').addEventListener('click', () => {
  $('sign-confirm-box').hidden = false;
  tid('sign').hidden = true;
  tid('sign-keep').focus();
});
tid('sign-keep').addEventListener('click', () => {
  $('sign-confirm-box').hidden = true;
  tid('sign').hidden = false;
});
tid('sign-confirm').addEventListener('click', () => {
  $('sign-confirm-box').hidden = true;
  tid('sign').hidden = false;
  const c = S.book.get(S.openId);
  const fields = { case_id: S.openId };
  // sign exactly the text on screen: the server refuses if the proposal changed meanwhile
  if (c && c.agreement && c.agreement.id) fields.agreement_id = c.agreement.id;
  act(tid('sign'), 'agreement.sign', fields, { conflict: 'mediate.signConflict' });
});

// the settled agreement as a PDF (issue 15): fetched with this page's token, saved as a file
tid('agreement-pdf').addEventListener('click', async () => {
  const btn = tid('agreement-pdf');
  const c = S.book.get(S.openId);
  if (!c) return;
  notify(msgFor(btn), '');
  btn.disabled = true;
  try {
    const token = S.mode === 'staff' ? staff.token() : await deviceToken();
    const r = await fetch(`/api/cases/${encodeURIComponent(c.id)}/agreement.pdf`,
      { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = `agreement-${c.ref_no}.pdf`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    notify(msgFor(btn), t('mediate.agreementPdfFailed'), 'error');
  } finally {
    btn.disabled = false;
  }
});

// ---- start -------------------------------------------------------------------------------------------

onLangChange(() => {
  view.renderCases();
  view.paintCase();
});

if (!staff.account() && store.get(K.resident)) {
  // a resident coming back: their cases, straight away
  forms.showResidentApp();
  startResident();
}
