// The console alarm (issue 12): a repeating tone for every escalated incident and every new priority-1
// incident until a dispatcher says "I'm on it" (incident.ack), the list of what rings, a five-minute mute,
// and the "click to enable sound" state browsers impose before a first click. What rings is decided by
// alarm-state.js (the same rule as dispatch/alarm.py); acknowledgements come from the server, the mute's end
// from localStorage, so a reload keeps both.
//
// Hooks: data-testid="alarm" (data-state ringing / quiet / muted; data-sound on / blocked / none; data-beeps
// counts tones played), "alarm-ack", "alarm-incident" (one per incident ringing), "alarm-mute", "alarm-sound",
// and "taken-by" on queue rows (takenBadge).
import { t } from './i18n.js';
import { h, notify } from './ui.js';
import { store } from './api.js';
import { playTones } from './attention.js';
import { MUTE_MS, alarmState, fmtLeft, muteLeft, ringing, takenBy, takenElsewhere, target } from './alarm-state.js';

const MUTE_KEY = 'helpline.dispatch.alarmMuteUntil';

/** Only a real change is written: the bar repaints twice a second, and a live region must not repeat itself. */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
const RING_EVERY_MS = 2000;

// ---- sound ------------------------------------------------------------------------------

let ctx = null;

function audio() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  if (!ctx) ctx = new Ctx(); // suspended until a user gesture, by the browser's autoplay policy
  return ctx;
}

/** 'on', 'blocked' (the browser waits for a click) or 'none' (no Web Audio). */
function soundState() {
  const a = audio();
  if (!a) return 'none';
  return a.state === 'running' ? 'on' : 'blocked';
}

function unlock() {
  const a = audio();
  if (a && a.state !== 'running') return a.resume().catch(() => {});
  return Promise.resolve();
}

/** One ring: three short alternating tones, well apart from the responder page's two-tone chime. */
function tone() {
  return playTones(audio(), [[0, 988], [0.2, 784], [0.4, 988]], { type: 'square', peak: 0.25, fade: 0.17, stop: 0.18 });
}

// ---- the bar ----------------------------------------------------------------------------

/** "Taken by Ops Li" for a queue row, or null when nobody took the incident. */
export function takenBadge(inc) {
  const names = [...new Set(takenBy(inc))];
  if (!names.length) return null;
  return h('span', { class: 'badge badge-taken', testid: 'taken-by', text: t('alarm.takenBy', { names: names.join(t('punct.list')) }) });
}

/**
 * @param {object} o
 * @param {HTMLElement} o.root         the [data-testid=alarm] section of dispatch.html
 * @param {() => string|null} o.me     the signed-in account's id
 * @param {(id: string) => Promise<object>} o.ack   sends incident.ack; resolves to the incident
 * @param {(inc: object) => void} o.acked           the incident after an ack (the console keeps it)
 * @param {(id: string) => void} o.select           select an incident in the console
 * @param {() => string|null} o.selected            the selected incident's id
 */
export function consoleAlarm({ root, me, ack, acked, select, selected }) {
  const els = {
    text: root.querySelector('#alarm-text'),
    list: root.querySelector('#alarm-list'),
    note: root.querySelector('#alarm-note'),
    ackBtn: root.querySelector('[data-testid=alarm-ack]'),
    mute: root.querySelector('[data-testid=alarm-mute]'),
    muteLeftEl: root.querySelector('#alarm-mute-left'),
    sound: root.querySelector('[data-testid=alarm-sound]'),
  };
  let list = []; // incidents ringing, most urgent first
  let byId = new Map();
  let rangHere = new Set(); // ids that rang on this console at the last update
  let nextRing = 0;
  let beeps = 0;
  let busy = false;

  const muteUntil = () => store.get(MUTE_KEY);

  function paint() {
    const now = Date.now();
    const state = alarmState(list.length, muteUntil(), now);
    const left = muteLeft(muteUntil(), now);
    const sound = soundState();
    root.dataset.state = state;
    root.dataset.sound = sound;
    setText(els.text, list.length ? t('alarm.ringing', { n: list.length }) : t('alarm.quiet'));
    const tgt = target(list, selected());
    els.ackBtn.hidden = !tgt;
    els.ackBtn.disabled = busy;
    if (tgt) setText(els.ackBtn, t('alarm.ack', { ref: tgt.ref_no }));
    els.mute.setAttribute('aria-pressed', left > 0 ? 'true' : 'false');
    setText(els.mute, left > 0 ? t('alarm.unmute') : t('alarm.mute'));
    els.muteLeftEl.hidden = left <= 0;
    setText(els.muteLeftEl, left > 0 ? t('alarm.muteLeft', { left: fmtLeft(left) }) : '');
    els.sound.hidden = sound !== 'blocked';
  }

  function paintList() {
    const tgt = target(list, selected());
    els.list.replaceChildren(...list.map((inc) => h('li', {},
      h('button', {
        class: `alarm-incident${tgt && inc.id === tgt.id ? ' target' : ''}`,
        testid: 'alarm-incident',
        data: { incidentId: inc.id },
        attrs: { type: 'button', 'aria-current': tgt && inc.id === tgt.id ? 'true' : false },
        text: `${inc.ref_no} · ${inc.status === 'escalated' ? t('alarm.whyEscalated') : t('alarm.whyNew', { n: inc.priority })} · ${t(`category.${inc.category}`)}`,
        on: { click: () => select(inc.id) },
      }))));
  }

  function ring() {
    const now = Date.now();
    if (root.dataset.state !== 'ringing' || now < nextRing) return;
    if (tone()) {
      beeps += 1;
      root.dataset.beeps = String(beeps);
      nextRing = now + RING_EVERY_MS;
    }
  }

  /** The console's open incidents changed (or the selection did). */
  function update(incidents) {
    byId = new Map([...incidents].map((i) => [i.id, i]));
    const was = rangHere;
    list = ringing(byId.values());
    rangHere = new Set(list.map((i) => i.id));
    const gone = takenElsewhere(was, list, byId, me());
    if (gone.length) {
      notify(els.note, gone.map((g) => t('alarm.takenElsewhere', { ref: g.inc.ref_no, names: g.names.join(t('punct.list')) })).join(' '), 'ok');
    }
    if (list.some((i) => !was.has(i.id))) nextRing = 0; // something new: ring at once
    paintList();
    paint();
    ring();
  }

  els.ackBtn.addEventListener('click', async () => {
    const tgt = target(list, selected());
    if (!tgt || busy) return;
    busy = true;
    paint();
    notify(els.note, '');
    try {
      const inc = await ack(tgt.id);
      acked(inc);
      select(tgt.id); // open it: the dispatcher took it to act on it
      notify(els.note, t('alarm.youTook', { ref: tgt.ref_no }), 'ok');
    } catch (e) {
      notify(els.note, t('alarm.ackFailed', { ref: tgt.ref_no }), 'error');
    } finally {
      busy = false;
      paint();
    }
  });

  els.mute.addEventListener('click', () => {
    if (muteLeft(muteUntil(), Date.now()) > 0) {
      store.del(MUTE_KEY);
      nextRing = 0;
    } else {
      store.set(MUTE_KEY, Date.now() + MUTE_MS);
    }
    paint();
    ring();
  });

  els.sound.addEventListener('click', () => {
    unlock().then(() => {
      nextRing = 0;
      paint();
      ring();
    });
  });

  // any click or key on the page lets the browser make sound from then on
  const onGesture = () => {
    if (soundState() === 'blocked') unlock().then(() => { paint(); ring(); });
  };
  document.addEventListener('pointerdown', onGesture, true);
  document.addEventListener('keydown', onGesture, true);

  setInterval(() => {
    paint(); // the mute's time left; a mute that ended rings again
    ring();
  }, 500);

  paint();
  return {
    update,
    /** Signed out: nothing rings, the mute is dropped (the next dispatcher starts with sound). */
    reset() {
      store.del(MUTE_KEY);
      rangHere = new Set();
      notify(els.note, '');
      update([]);
    },
    repaint() {
      paintList();
      paint();
    },
  };
}
