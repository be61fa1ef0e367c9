// The responder's page: duty on/off with the device's position, the offer card with its
// countdown, then the assignment and its progress.
import { referControl } from './dispatch-refer.js';
import { t, has, onLangChange } from './i18n.js';
import { store } from './api.js';
import { tid, notify, errorText, currentPosition, distanceKm, fmtKm, notOlder } from './ui.js';
import { staffSession } from './staff.js';
import { FINAL, PROGRESS, WORKING } from './status.js';
import { chime, primeAudio, holdScreen } from './attention.js';
import { pushAlerts } from './push.js';
import { paintJobFacts } from './responder-job.js';
import { leaveGuard } from './responder-leave.js';

const DUTY_KEY = 'helpline.responder.onduty';
const LOCATION_EVERY_MS = 15000;
// a preempted call is followed at once by the more urgent one: its note stays up beside that for a while
const PREEMPT_NOTE_MS = 15000;

const els = {
  dutyStatus: document.getElementById('duty-status'),
  posInfo: document.getElementById('position-info'),
  toggle: tid('duty-toggle'),
  offer: tid('offer'),
  offerCategory: document.getElementById('offer-category'),
  offerDistance: document.getElementById('offer-distance'),
  offerNote: document.getElementById('offer-note'),
  countdown: document.getElementById('offer-countdown'),
  bar: document.getElementById('offer-bar'),
  accept: tid('accept'),
  decline: tid('decline'),
  job: document.getElementById('job'),
  dismiss: document.getElementById('job-dismiss'),
  msg: document.getElementById('msg'),
  alert: tid('alert-banner'),
  resolveBox: document.getElementById('resolve-confirm-box'),
  resolveKeep: tid('resolve-keep'),
  resolveYes: tid('resolve-confirm'),
};

let me = null; // the responder object from the server ({status, ...})
let offer = null; // {offer_id, incident, expires_at, total_ms}
let job = null; // the assigned incident
let pos = null; // {lat, lon, at}
let watchId = null;
let busy = false; // a duty command is in flight
let preemptedAt = 0; // when an offer was last withdrawn for a more urgent call

const { sock, account, token } = staffSession({
  page: 'responder',
  roles: ['responder'],
  onWelcome,
  holdLogout: (proceed) => leave.ask('signout', proceed),
  beforeLogout: async () => {
    // a job in hand was handed back first (leaveAnyway); this only ends plain duty
    if (store.get(DUTY_KEY) && onDuty() && !onJob()) await sock.request('duty.end', {}, { waitMs: 2000 });
  },
  onLogout: () => {
    alerts.signedOut();
    store.del(DUTY_KEY);
    stopWatch();
    me = offer = job = null;
    leave.close();
    alertNow('');
    paint();
  },
});

const alerts = pushAlerts({ container: document.getElementById('app'), token }); // offers with the screen off
function onJob() {
  return !!job && WORKING.has(job.status);
}

const leave = leaveGuard({
  sock,
  onJob,
  paint: () => paint(),
  handedBack: (responder) => {
    me = responder;
    job = null;
    store.del(DUTY_KEY);
    stopWatch();
  },
});

// ---- duty and position ---------------------------------------------------------

function keep(p) {
  pos = { lat: p.coords.latitude, lon: p.coords.longitude, at: Date.now() };
  paintPosition();
}

function startWatch() {
  if (watchId !== null || !('geolocation' in navigator)) return;
  watchId = navigator.geolocation.watchPosition(keep, () => paintPosition(true), {
    enableHighAccuracy: true,
    maximumAge: 10000,
  });
}

function stopWatch() {
  if (watchId !== null) navigator.geolocation.clearWatch(watchId);
  watchId = null;
}

setInterval(() => {
  if (!me || me.status === 'off_duty' || !pos || sock.state !== 'live') return;
  sock.request('location.update', { lat: pos.lat, lon: pos.lon }, { waitMs: 0 }).catch(() => {});
}, LOCATION_EVERY_MS);

async function freshPosition() {
  const p = await currentPosition({ timeoutMs: 10000, maximumAgeMs: 15000 });
  keep(p);
  return pos;
}

async function startDuty() {
  let here;
  try {
    here = await freshPosition();
  } catch {
    notify(els.msg, t('responder.needPosition'), 'error');
    paintPosition(true);
    return;
  }
  const r = await sock.request('duty.start', { lat: here.lat, lon: here.lon });
  me = r.responder;
  store.set(DUTY_KEY, true);
  startWatch();
}

async function endDuty() {
  const r = await sock.request('duty.end', {});
  me = r.responder;
  store.del(DUTY_KEY);
  stopWatch();
}

async function toggleDuty() {
  if (busy || leave.ask('offduty', null)) return;
  busy = true;
  els.toggle.disabled = true;
  notify(els.msg, '');
  try {
    if (onDuty()) await endDuty();
    else await startDuty();
  } catch (e) {
    notify(els.msg, errorText(e), 'error');
  } finally {
    busy = false;
    paint();
  }
}

function onDuty() {
  return !!me && me.status !== 'off_duty';
}

// ---- offer ------------------------------------------------------------------------

function setOffer(o) {
  const id = o && (o.offer_id || o.id);
  const fresh = !!o && (!offer || offer.offer_id !== id);
  if (!o) offer = null;
  else {
    const left = Date.parse(o.expires_at) - sock.now();
    offer = { ...o, offer_id: id, total_ms: fresh ? Math.max(left, 1000) : offer.total_ms };
  }
  paint();
  if (fresh) {
    const urgent = justPreempted();
    if (!urgent) notify(els.msg, ''); // an old "withdrawn" is not about this call; a preempted one is
    alertNow(t(urgent ? 'responder.alertUrgent' : 'responder.alertOffer', { what: describe(offer.incident) }));
    els.offer.focus(); // screen readers announce "Someone needs help"
  } else if (!o) {
    alertNow('');
  }
}

function describe(inc) {
  const d = distanceTo(inc);
  return d ? `${t(`category.${inc.category}`)}${t('punct.comma')}${d}` : t(`category.${inc.category}`);
}

/** Every offer and assignment is seen and heard: the banner at the top, a sound, a buzz. */
function alertNow(text) {
  els.alert.textContent = text;
  els.alert.hidden = !text;
  if (!text) return;
  if (chime()) els.alert.dataset.chimes = String(Number(els.alert.dataset.chimes || 0) + 1);
  const activated = !navigator.userActivation || navigator.userActivation.hasBeenActive;
  if (navigator.vibrate && activated) navigator.vibrate([300, 100, 300]);
}

function tick() {
  if (!offer) return;
  const left = Math.max(0, Date.parse(offer.expires_at) - sock.now());
  els.countdown.textContent = left > 0 ? t('responder.countdown', { n: Math.ceil(left / 1000) }) : t('responder.timeUp');
  els.bar.style.width = `${Math.round((100 * left) / offer.total_ms)}%`;
  els.offer.classList.toggle('urgent', left < 6000);
  els.accept.disabled = left <= 0;
}
setInterval(tick, 250);

async function answer(accept) {
  if (!offer) return;
  const id = offer.offer_id;
  els.accept.disabled = els.decline.disabled = true;
  try {
    if (accept) {
      const r = await sock.request('offer.accept', { offer_id: id });
      if (notOlder(job, r.incident)) job = r.incident;
      alertNow('');
    } else {
      await sock.request('offer.decline', { offer_id: id });
    }
    if (offer && offer.offer_id === id) offer = null;
  } catch (e) {
    if (e.code === 'conflict' || e.code === 'not_found') {
      notify(els.msg, t('responder.offerGone'), 'error');
      offer = null;
    } else {
      notify(els.msg, errorText(e), 'error');
    }
  }
  els.accept.disabled = els.decline.disabled = false;
  paint();
}

// ---- assignment ---------------------------------------------------------------------

async function progress(status) {
  if (!job) return;
  els.resolveBox.hidden = true;
  notify(els.msg, '');
  for (const s of PROGRESS.slice(1)) tid(`progress-${s}`).disabled = true;
  const noteBox = tid('progress-note');
  const note = noteBox.value.trim();
  const fields = { incident_id: job.id, status };
  if (note) fields.note = note;
  try {
    const r = await sock.request('incident.progress', fields);
    if (notOlder(job, r.incident)) job = r.incident;
    if (noteBox.value.trim() === note) noteBox.value = ''; // it went with this step
  } catch (e) {
    notify(els.msg, errorText(e), 'error');
  }
  paint();
}

// ---- server events --------------------------------------------------------------------

function onWelcome(w) {
  alerts.refresh();
  me = w.responder || null;
  if (me && onDuty()) store.set(DUTY_KEY, true);
  else if (me) store.del(DUTY_KEY); // the server's word wins
  const open = w.open_incidents || [];
  if (open.length) job = open[open.length - 1];
  else if (job && !FINAL.has(job.status)) job = null; // it ended while we were away
  setOffer(w.offer || null);
  if (!w.responder && store.get(DUTY_KEY) && !onDuty()) {
    // we were on duty before the reload or reconnect: say so again
    busy = true;
    startDuty()
      .catch((e) => notify(els.msg, errorText(e), 'error'))
      .finally(() => {
        busy = false;
        paint();
      });
  } else if (onDuty() || open.length) {
    startWatch();
  }
  paint();
}

sock.on('offer', (m) => setOffer(m));

function mine(inc) {
  const a = account();
  return !!a && !!inc.responder && inc.responder.id === a.id && WORKING.has(inc.status);
}

function justPreempted() {
  return Date.now() - preemptedAt < PREEMPT_NOTE_MS;
}

sock.on('offer.withdrawn', (m) => {
  if (!offer || offer.offer_id !== m.offer_id) return;
  // preempted: a dispatcher or a priority-1 incident needs this responder; the new call follows at once
  preemptedAt = m.reason === 'preempted' ? Date.now() : 0;
  const key = `responder.withdrawn.${m.reason}`;
  notify(els.msg, t(has(key) ? key : 'responder.withdrawn'), 'info');
  setOffer(null);
});

sock.on('incident.updated', (m) => {
  if (job && m.incident.id === job.id) {
    if (!notOlder(job, m.incident)) return;
    job = m.incident;
    if (job.status === 'cancelled') notify(els.msg, t('responder.cancelledByResident'), 'info');
    paint();
  } else if (mine(m.incident) && (!job || FINAL.has(job.status))) {
    job = m.incident; // a dispatcher assigned it to us directly
    if (!justPreempted()) notify(els.msg, '');
    alertNow(t('responder.alertAssigned', { ref: job.ref_no, what: describe(job) }));
    paint();
  } else if (offer && offer.incident.id === m.incident.id) {
    offer = { ...offer, incident: m.incident };
    paint();
  }
});

sock.on('responder.updated', (m) => {
  if (me && m.responder.id === me.id && notOlder(me, m.responder)) {
    me = m.responder;
    paint();
  }
});

// ---- painting -------------------------------------------------------------------------

function distanceTo(inc) {
  if (!pos || inc.lat === null || inc.lat === undefined) return '';
  return t('responder.away', { d: fmtKm(distanceKm(pos.lat, pos.lon, inc.lat, inc.lon)) });
}

function paintPosition(failed = false) {
  if (failed && !pos) els.posInfo.textContent = t('responder.positionUnavailable');
  else if (pos) els.posInfo.textContent = t('responder.positionShared', { lat: pos.lat.toFixed(4), lon: pos.lon.toFixed(4) });
  else els.posInfo.textContent = '';
}

/** Our duty status; the server pushes responder.updated to dispatchers only, so derive it. */
function dutyStatus() {
  if (!onDuty()) return 'off_duty';
  if (job && !FINAL.has(job.status)) return 'busy';
  if (offer) return 'offered';
  return 'available';
}

function paint() {
  const status = dutyStatus();
  els.dutyStatus.dataset.status = status;
  els.dutyStatus.textContent = t(`duty.${status}`);
  els.toggle.textContent = onDuty() ? t('responder.goOff') : t('responder.goOn');
  els.toggle.setAttribute('aria-pressed', String(onDuty()));
  els.toggle.classList.toggle('btn-secondary', onDuty());
  els.toggle.disabled = busy || sock.state !== 'live';
  holdScreen(onDuty());

  els.offer.hidden = !offer;
  if (offer) {
    const inc = offer.incident;
    els.offerCategory.textContent = t(`category.${inc.category}`);
    els.offerDistance.textContent = distanceTo(inc);
    els.offerNote.hidden = !inc.note;
    els.offerNote.textContent = inc.note || '';
    tick();
  }

  els.job.hidden = !job;
  if (job) {
    const idx = PROGRESS.indexOf(job.status);
    paintJobFacts(job, distanceTo(job));
    const open = !FINAL.has(job.status);
    const next = PROGRESS[idx + 1]; // only the next step: a skipped one cannot be tapped by mistake
    const confirming = !els.resolveBox.hidden;
    for (const s of PROGRESS.slice(1)) {
      const b = tid(`progress-${s}`);
      b.hidden = !open || s !== next || confirming;
      b.disabled = false;
    }
    if (!open) els.resolveBox.hidden = true;
    if (!open && els.alert.textContent.includes(job.ref_no)) alertNow('');
    els.dismiss.hidden = open;
    document.getElementById('progress-note-field').hidden = !open;
  }
  // issue 15: the responder on a dispute may refer it into mediation; then the job names the case
  referrer.paint(job);
  const jobCase = document.getElementById('job-case');
  jobCase.hidden = !(job && job.case_ref);
  jobCase.textContent = job && job.case_ref ? t('dispatch.referredCase', { ref: job.case_ref }) : '';
}

const referrer = referControl({
  form: document.getElementById('refer-form'),
  selected: () => job,
  refer: (fields) => sock.request('incident.refer', fields),
  done: (inc) => {
    job = inc;
    paint();
  },
});

// ---- wiring ------------------------------------------------------------------------------

els.toggle.addEventListener('click', toggleDuty);
els.accept.addEventListener('click', () => answer(true));
els.decline.addEventListener('click', () => answer(false));
for (const s of ['en_route', 'on_scene']) tid(`progress-${s}`).addEventListener('click', () => progress(s));
// resolving ends the job and tells the resident it is over: asked first
tid('progress-resolved').addEventListener('click', () => {
  els.resolveBox.hidden = false;
  paint();
  els.resolveKeep.focus();
});
els.resolveKeep.addEventListener('click', () => {
  els.resolveBox.hidden = true;
  paint();
});
els.resolveYes.addEventListener('click', () => progress('resolved'));
document.addEventListener('pointerdown', primeAudio, { capture: true });
document.addEventListener('keydown', primeAudio, { capture: true });
els.dismiss.addEventListener('click', () => {
  job = null;
  paint();
});
sock.onState(() => paint());
onLangChange(() => {
  paint();
  paintPosition();
  leave.paint();
});
paint();
