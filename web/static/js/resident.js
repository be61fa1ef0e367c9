// The resident's page: one press asks for help; then the live status of that request.
//
// Nothing is lost on a reload or a dropped link: the request (with its request_id) is
// kept in localStorage until the server acknowledges it, and re-sent with the same
// request_id (the server answers the same incident), over the socket or, failing
// that, over HTTP.
import { t, applyI18n, onLangChange } from './i18n.js';
import { getConfig, postJSON, getJSON, newId, store } from './api.js';
import { tid, setupChrome, notify, errorText, currentPosition, notOlder } from './ui.js';
import { deviceToken, deviceSocket } from './device.js';
import { FINAL } from './status.js';

const K = {
  pending: 'helpline.resident.pending', // {req, located}: sent but not yet acknowledged
  incident: 'helpline.resident.incident', // id of the incident on screen
  lastPos: 'helpline.resident.lastpos', // {lat, lon, accuracy_m, at}
};
const FRESH_POS_MS = 2 * 60 * 1000;
const UNKNOWN_ACCURACY_M = 50000;

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
  again: document.getElementById('again'),
  msg: document.getElementById('msg'),
  call: document.getElementById('call'),
};

let current = null; // the incident on screen
let inflight = false;

// a stale device token is replaced with a new one (the same device id), after a jittered pause
const sock = deviceSocket({ retryAfterMs: () => 1000 + Math.random() * 2000 });

// ---- position ---------------------------------------------------------------

function remember(pos) {
  store.set(K.lastPos, {
    lat: pos.coords.latitude,
    lon: pos.coords.longitude,
    accuracy_m: Math.round(pos.coords.accuracy || 0),
    at: Date.now(),
  });
}

/** Keep a fresh fix ready when the browser already lets us, so one press sends at once. */
async function prewarmPosition() {
  if (!('geolocation' in navigator) || !navigator.permissions) return;
  try {
    const p = await navigator.permissions.query({ name: 'geolocation' });
    if (p.state === 'granted') {
      navigator.geolocation.watchPosition(remember, () => {}, { enableHighAccuracy: true, maximumAge: 30000 });
    }
  } catch {
    /* no permissions API: we ask on the press */
  }
}

/** The best position we can have now: {lat, lon, accuracy_m, located} */
async function locate() {
  const last = store.get(K.lastPos);
  if (last && Date.now() - last.at < FRESH_POS_MS) return { ...last, located: true };
  try {
    const pos = await currentPosition({ timeoutMs: 6000, maximumAgeMs: 60000 }); // not longer: help waits
    remember(pos);
    return {
      lat: pos.coords.latitude,
      lon: pos.coords.longitude,
      accuracy_m: Math.round(pos.coords.accuracy || 0),
      located: true,
    };
  } catch {
    // unavailable or refused: still send, with the last known place or the city centre,
    // and an accuracy that tells the dispatcher not to trust it
    if (last) return { lat: last.lat, lon: last.lon, accuracy_m: UNKNOWN_ACCURACY_M, located: false };
    const cfg = await getConfig();
    const c = cfg.city_center || [cfg.city_center_lat, cfg.city_center_lon];
    const lat = Number(c && c[0]);
    const lon = Number(c && c[1]);
    return {
      lat: Number.isFinite(lat) ? lat : 0,
      lon: Number.isFinite(lon) ? lon : 0,
      accuracy_m: UNKNOWN_ACCURACY_M,
      located: false,
    };
  }
}

// ---- sending ------------------------------------------------------------------

async function pressHelp() {
  if (inflight || store.get(K.pending)) return;
  els.help.disabled = true;
  notify(els.msg, '');
  showSending();
  const where = await locate();
  const req = {
    request_id: newId(),
    category: els.category.value,
    lat: where.lat,
    lon: where.lon,
    accuracy_m: where.accuracy_m,
  };
  const note = els.note.value.trim();
  if (note) req.note = note;
  store.set(K.pending, { req, located: where.located });
  els.posWarning.hidden = where.located;
  sendPending();
}

/** Send the unacknowledged request, if any; safe to call any number of times. */
async function sendPending() {
  const pending = store.get(K.pending);
  if (!pending || inflight) return;
  inflight = true;
  try {
    let incident;
    try {
      incident = (await sock.request('help.request', pending.req, { waitMs: 6000 })).incident;
    } catch (e) {
      if (!['disconnected', 'timeout', 'offline'].includes(e.code)) throw e;
      // the socket is not getting through: the same request over HTTP (same request_id)
      incident = (await postJSON('/api/help', pending.req, await deviceToken())).incident;
    }
    store.del(K.pending);
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

function showStart() {
  current = null;
  store.del(K.incident);
  els.start.hidden = false;
  els.incident.hidden = true;
  els.help.disabled = false;
}

function showSending() {
  els.start.hidden = true;
  els.incident.hidden = false;
  els.ref.textContent = '…';
  els.status.dataset.status = '';
  els.status.textContent = t('resident.sending');
  els.responderLine.hidden = true;
  els.noteLine.hidden = true;
  els.cancel.hidden = true;
  els.again.hidden = true;
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
  els.status.textContent = t(`rstatus.${inc.status}${name ? '' : '.noname'}`, { name: name || '' });
  els.responderLine.hidden = !name;
  els.responderName.textContent = name || '';
  els.noteLine.hidden = !inc.note;
  els.noteText.textContent = inc.note || ''; // resident text: always as text
  const open = !FINAL.has(inc.status);
  els.cancel.hidden = !open;
  els.cancel.disabled = false;
  els.again.hidden = open;
  if (!open) els.posWarning.hidden = true;
}

async function cancel() {
  if (!current) return;
  els.cancel.disabled = true;
  try {
    const r = await sock.request('help.cancel', { incident_id: current.id });
    showIncident(r.incident);
  } catch (e) {
    els.cancel.disabled = false;
    notify(els.msg, `${t('resident.cancelFailed')} ${errorText(e)}`, 'error');
  }
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
  els.cancel.addEventListener('click', cancel);
  els.again.addEventListener('click', showStart);

  const pending = store.get(K.pending);
  if (pending) {
    showSending();
    els.posWarning.hidden = pending.located;
  } else {
    restoreShown();
  }
  sock.start();
  setInterval(sendPending, 8000); // keeps trying while a request is unacknowledged
  prewarmPosition();

  const cfg = await getConfig();
  const number = String(cfg.emergency_number || '110');
  els.call.href = `tel:${number.replace(/[^0-9+]/g, '')}`;
  for (const n of document.querySelectorAll('.emergency-number')) n.textContent = number;
}

init();
