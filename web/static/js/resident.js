// The resident's page: one press asks for help; then the live status of that request.
//
// Nothing is lost on a reload or a dropped link: the request (with its request_id) is
// kept in localStorage until the server acknowledges it, and re-sent with the same
// request_id (the server answers the same incident), over the socket or, failing
// that, over HTTP.
import { t, applyI18n, onLangChange } from './i18n.js';
import { getConfig, postJSON, getJSON, newId, store } from './api.js';
import { tid, setupChrome, notify, errorText, notOlder } from './ui.js';
import { deviceToken, deviceSocket } from './device.js';
import { FINAL } from './status.js';
import { locate, prewarmPosition } from './resident-position.js';
import { escalationReason, handedBack } from './job-facts.js';
import { noteBox } from './resident-note.js';

const K = {
  pending: 'helpline.resident.pending', // {req, located, at}: sent but not yet acknowledged
  incident: 'helpline.resident.incident', // id of the incident on screen
};
// a request not acknowledged by then is dropped: a position minutes old sends help to the wrong
// place, and a person who waited that long must be told to call instead
const PENDING_MAX_MS = 3 * 60 * 1000;
// a second tap on HELP lands where the status card now is: nothing there acts for this long
const ARM_AFTER_MS = 2500;

const els = {
  start: document.getElementById('start'),
  incident: document.getElementById('incident'),
  category: tid('category'),
  note: tid('note'),
  help: tid('help-button'),
  ref: tid('incident-ref'),
  status: tid('incident-status'),
  responderLine: document.getElementById('responder-line'),
  responderName: tid('responder-name'),
  posWarning: document.getElementById('position-warning'),
  noteLine: document.getElementById('note-line'),
  noteText: tid('incident-note'),
  cancel: tid('cancel-button'),
  confirmBox: document.getElementById('cancel-confirm-box'),
  keep: tid('cancel-keep'),
  yes: tid('cancel-confirm'),
  again: document.getElementById('again'),
  sms: document.getElementById('sms'),
  msg: document.getElementById('msg'),
  call: document.getElementById('call'),
};

let current = null; // the incident on screen
let inflight = false;
let armedAt = 0; // taps on the status card before this time are ignored
let cancelOnAck = null; // request_id cancelled while its send was in flight
let pressSeq = 0; // a press still finding its position is abandoned when this moves on
let locating = false;
let emergencyNumber = '110';

// a stale device token is replaced with a new one (the same device id), after a jittered pause
const sock = deviceSocket({ retryAfterMs: () => 1000 + Math.random() * 2000 });

// the box for adding to a sent request (incident.note): stays while it is open
const noteForm = noteBox({
  sock,
  current: () => current,
  show: (inc) => showIncident(inc),
  noPosition: () => !els.posWarning.hidden || ['no_position', 'bad_position'].includes(escalationReason(current)),
});

// ---- sending ------------------------------------------------------------------

async function pressHelp() {
  if (inflight || store.get(K.pending)) return;
  els.help.disabled = true;
  notify(els.msg, '');
  const category = els.category.value; // what was chosen when HELP was pressed
  const note = els.note.value.trim();
  const mine = ++pressSeq;
  locating = true;
  showSending();
  let where;
  try {
    where = await locate();
  } finally {
    if (mine === pressSeq) locating = false;
  }
  if (mine !== pressSeq) return; // cancelled while the position was being found: nothing is sent
  const req = {
    request_id: newId(),
    category,
    lat: where.lat,
    lon: where.lon,
    accuracy_m: where.accuracy_m,
  };
  if (note) req.note = note;
  store.set(K.pending, { req, located: where.located, at: Date.now() });
  els.posWarning.hidden = where.located;
  sendPending();
}

/** Send the unacknowledged request, if any; safe to call any number of times. */
async function sendPending() {
  const pending = store.get(K.pending);
  if (!pending || inflight) return;
  if (Date.now() - pending.at > PENDING_MAX_MS) {
    expirePending();
    return;
  }
  inflight = true;
  // still the request to send: not cancelled (nor replaced) while waiting for a link
  const wanted = () => (store.get(K.pending) || {}).req?.request_id === pending.req.request_id;
  try {
    let incident;
    try {
      incident = (await sock.request('help.request', pending.req, { waitMs: 6000, wanted })).incident;
    } catch (e) {
      // cancelled before it could go (never sent): it never goes
      if (e.code === 'withdrawn' || (e.code === 'offline' && !wanted())) {
        if (cancelOnAck === pending.req.request_id) cancelOnAck = null;
        return;
      }
      if (!['disconnected', 'timeout', 'offline'].includes(e.code)) throw e;
      // the socket is not getting through: the same request over HTTP (same request_id)
      incident = (await postJSON('/api/help', pending.req, await deviceToken())).incident;
    }
    const stillWanted = store.get(K.pending);
    store.del(K.pending);
    if (cancelOnAck === pending.req.request_id || !stillWanted) {
      // cancelled while it was on its way: it reached the server anyway, so cancel it there
      cancelOnAck = null;
      current = incident;
      await cancelNow();
      return;
    }
    showIncident(incident);
  } catch (e) {
    const retry = e.status === 0 || e.status >= 500 || e.status === 429 || e.status === 401 ||
      ['rate_limited', 'unavailable', 'network', 'disconnected', 'timeout', 'offline'].includes(e.code);
    if (retry) {
      notify(els.msg, t('resident.stillTrying'), 'error');
    } else {
      store.del(K.pending);
      notify(els.msg, `${t('resident.sendFailed')} ${errorText(e)}`, 'error');
      showStart();
    }
  } finally {
    inflight = false;
  }
}

// ---- showing --------------------------------------------------------------------

function expirePending() {
  store.del(K.pending);
  showStart();
  notify(els.msg, t('resident.expired', { min: PENDING_MAX_MS / 60000, number: emergencyNumber }), 'error');
}

/** A new request starts from a clean form: not the last one's category or note. */
function showStart() {
  current = null;
  store.del(K.incident);
  els.category.value = 'other';
  els.note.value = '';
  els.start.hidden = false;
  els.incident.hidden = true;
  els.help.disabled = false;
  noteForm.paint();
}

function arm() {
  armedAt = Date.now() + ARM_AFTER_MS;
  els.cancel.disabled = true;
  setTimeout(() => paintCancel(), ARM_AFTER_MS + 20);
}

function showSending() {
  const fromStart = !els.start.hidden;
  els.start.hidden = true;
  els.incident.hidden = false;
  if (fromStart) arm();
  els.ref.textContent = '…';
  els.status.dataset.status = '';
  els.status.textContent = t('resident.sending');
  els.responderLine.hidden = true;
  els.noteLine.hidden = true;
  els.again.hidden = true;
  closeConfirm();
  paintCancel();
  noteForm.paint();
}

function showIncident(inc) {
  if (!notOlder(current, inc)) return; // a late, older copy
  current = inc;
  notify(els.msg, '');
  store.set(K.incident, inc.id);
  els.start.hidden = true;
  els.incident.hidden = false;
  paintIncident();
}

function paintIncident() {
  const inc = current;
  if (!inc) return;
  const name = inc.responder && inc.responder.name;
  els.ref.textContent = inc.ref_no;
  els.status.dataset.status = inc.status;
  els.status.textContent = statusText(inc, name);
  els.responderLine.hidden = !name;
  els.responderName.textContent = name || '';
  els.noteLine.hidden = !inc.note;
  els.noteText.textContent = inc.note || ''; // resident text: always as text
  const open = !FINAL.has(inc.status);
  els.again.hidden = open;
  if (!open) {
    els.posWarning.hidden = true;
    closeConfirm();
  }
  paintCancel();
  noteForm.paint();
}

/** What is true: a dispatcher's close says so and how; escalated is waiting, not handled, and says why
 * (the server's escalation_reason); a helper who gave the request back is not said to be coming. */
function statusText(inc, name) {
  if (FINAL.has(inc.status) && inc.disposition) {
    return t('rstatus.closedBy', { d: t(`disposition.${inc.disposition}`) });
  }
  const vars = { name: name || '', number: emergencyNumber, n: inc.offer_attempts };
  const reason = escalationReason(inc);
  if (reason) return t(`rstatus.escalated.${reason}`, vars);
  if (handedBack(inc)) return t('rstatus.handedBack', vars);
  return t(`rstatus.${inc.status}${name ? '' : '.noname'}`, vars);
}

function cancellable() {
  if (current) return !FINAL.has(current.status);
  return locating || !!store.get(K.pending);
}

function paintCancel() {
  const can = cancellable();
  const confirming = !els.confirmBox.hidden;
  els.cancel.hidden = !can || confirming;
  els.cancel.disabled = Date.now() < armedAt;
}

function closeConfirm() {
  els.confirmBox.hidden = true;
}

function askCancel() {
  if (Date.now() < armedAt || !cancellable()) return;
  els.confirmBox.hidden = false;
  // "keep" sits where Cancel was: a double tap on Cancel keeps the request
  els.yes.disabled = true;
  setTimeout(() => { els.yes.disabled = false; }, 600);
  paintCancel();
  els.keep.focus();
}

function keepRequest() {
  closeConfirm();
  paintCancel();
  els.cancel.focus();
}

async function confirmCancel() {
  if (els.yes.disabled) return;
  closeConfirm();
  const pending = store.get(K.pending);
  if (!current && (pending || locating)) {
    pressSeq += 1;
    locating = false;
    // never acknowledged: drop it here; if its send is in flight, cancel it on arrival
    store.del(K.pending);
    if (inflight && pending) cancelOnAck = pending.req.request_id;
    showStart();
    notify(els.msg, t('resident.notSent'), 'info');
    return;
  }
  await cancelNow();
}

async function cancelNow() {
  if (!current) return;
  els.cancel.disabled = true;
  try {
    const r = await sock.request('help.cancel', { incident_id: current.id });
    showIncident(r.incident);
  } catch (e) {
    notify(els.msg, `${t('resident.cancelFailed')} ${errorText(e)}`, 'error');
  }
  paintCancel();
}

/** After a reload: the incident we were showing, even if it closed meanwhile. */
async function restoreShown() {
  const id = store.get(K.incident);
  if (!id || current) return;
  try {
    const r = await getJSON(`/api/incidents/${encodeURIComponent(id)}`, await deviceToken());
    if (!current && r && r.incident) showIncident(r.incident);
  } catch (e) {
    if (e.status === 404 || e.status === 403) store.del(K.incident);
  }
}

// ---- wiring -----------------------------------------------------------------------

sock.on('welcome', (w) => {
  if (store.get(K.pending)) {
    sendPending();
    return;
  }
  const open = w.open_incidents || [];
  const shownId = current ? current.id : store.get(K.incident);
  const mine = open.find((i) => i.id === shownId) || open[open.length - 1];
  if (mine) showIncident(mine);
  else if (shownId) {
    current = null;
    restoreShown(); // it closed while we were away: show how it ended
  }
});

sock.on('incident.updated', (m) => {
  if (!current || m.incident.id === current.id || FINAL.has(current.status)) showIncident(m.incident);
});

async function init() {
  applyI18n();
  setupChrome(sock);
  onLangChange(() => {
    if (current) paintIncident();
    else if (!els.incident.hidden) els.status.textContent = t('resident.sending');
  });
  els.help.addEventListener('click', pressHelp);
  els.cancel.addEventListener('click', askCancel);
  els.keep.addEventListener('click', keepRequest);
  els.yes.addEventListener('click', confirmCancel);
  els.again.addEventListener('click', () => {
    showStart();
    els.help.focus();
  });
  registerShell();
  keepBarClear();

  const cfg0 = await getConfig();
  emergencyNumber = String(cfg0.emergency_number || '110');

  const pending = store.get(K.pending);
  if (pending && !pending.at) store.set(K.pending, { ...pending, at: Date.now() }); // from an older page
  if (pending && Date.now() - (pending.at || Date.now()) > PENDING_MAX_MS) {
    expirePending();
  } else if (pending) {
    showSending();
    els.posWarning.hidden = pending.located;
  } else {
    restoreShown();
  }
  sock.start();
  setInterval(sendPending, 8000); // keeps trying while a request is unacknowledged
  prewarmPosition();

  const number = emergencyNumber;
  els.call.href = `tel:${number.replace(/[^0-9+]/g, '')}`;
  for (const n of document.querySelectorAll('.emergency-number')) n.textContent = number;
  paintSms(cfg0);
  onLangChange(() => paintSms(cfg0));
  const offline = document.getElementById('offline-note');
  const paintOffline = () => {
    // only once a connection attempt failed: "connecting" at load is not news
    offline.hidden = sock.state !== 'offline';
    offline.textContent = t('resident.offlineShell', { number });
  };
  sock.onState(paintOffline);
  onLangChange(paintOffline);
  paintOffline();
}

/** A text message is the way in without internet: HELP to the service's number. */
function paintSms(cfg) {
  const to = String(cfg.sms_number || '').replace(/[^0-9+]/g, '');
  els.sms.hidden = !to;
  if (!to) return;
  els.sms.href = `sms:${to}?body=${encodeURIComponent(t('resident.smsBody'))}`;
  els.sms.querySelector('.sms-number').textContent = cfg.sms_number;
}

/** Whatever is scrolled into view stops above the sticky 110 bar, however tall large text makes it. */
function keepBarClear() {
  const bar = document.querySelector('.emergency-bar');
  if (!bar || !('ResizeObserver' in window)) return;
  new ResizeObserver(() => {
    document.documentElement.style.setProperty('--bar-h', `${bar.offsetHeight}px`);
  }).observe(bar);
}

/** The service worker keeps this page (and the ways to call or text) loadable offline. */
function registerShell() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {
    /* no offline shell: the page still works online */
  });
}

init();
