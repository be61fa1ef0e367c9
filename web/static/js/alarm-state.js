// The console alarm without a page (no DOM, no sound): which incidents ring, which one "I'm on it"
// takes, who took an incident, and the mute. The same rule as the server's dispatch/alarm.py:
//
//   an escalated incident rings, and a new priority-1 incident (queued or offered), until a dispatcher
//   acknowledges it; any acknowledgement quiets a new P1, only one made while escalated quiets an
//   escalation (a P1 taken while offered rings again if it escalates: now someone must act).
//
// Tested on its own by web/tests/alarm-state.test.mjs (node --test).

export const URGENT_PRIORITY = 1;
const NEW = new Set(['queued', 'offered']);
export const MUTE_MS = 5 * 60 * 1000;

/** 'escalated', 'new_urgent' or null: why the incident asks for a dispatcher now. */
export function attention(inc) {
  if (inc.status === 'escalated') return 'escalated';
  if (NEW.has(inc.status) && inc.priority <= URGENT_PRIORITY) return 'new_urgent';
  return null;
}

function covers(ack, why) {
  return why === 'new_urgent' || ack.status === 'escalated';
}

/** Whether the console rings for this incident. */
export function rings(inc) {
  const why = attention(inc);
  return why !== null && !(inc.acknowledged_by || []).some((a) => covers(a, why));
}

/** The incidents that ring, the most urgent first: escalated, then by priority, then the oldest. */
export function ringing(incidents) {
  return [...incidents].filter(rings).sort((a, b) =>
    (a.status === 'escalated' ? 0 : 1) - (b.status === 'escalated' ? 0 : 1)
    || a.priority - b.priority || Date.parse(a.created_at) - Date.parse(b.created_at));
}

/** What "I'm on it" takes: the selected incident if it rings (the dispatcher is looking at it), else the most urgent. */
export function target(list, selectedId) {
  return list.find((i) => i.id === selectedId) || list[0] || null;
}

/** The names of those who took the incident, in order (for "taken by …"). */
export function takenBy(inc) {
  return (inc.acknowledged_by || []).map((a) => a.name).filter(Boolean);
}

/** Whether `me` has taken the incident (in any status). */
export function takenByMe(inc, me) {
  return (inc.acknowledged_by || []).some((a) => a.id === me);
}

/** Milliseconds of mute left (0: not muted). A stored end further away than one mute is not trusted. */
export function muteLeft(until, now) {
  const left = Number(until) - now;
  return Number.isFinite(left) && left > 0 && left <= MUTE_MS ? left : 0;
}

/** The alarm's data-state: 'ringing', 'muted' (something rings, the sound is off) or 'quiet'. */
export function alarmState(ringingCount, muteUntil, now) {
  if (!ringingCount) return 'quiet';
  return muteLeft(muteUntil, now) > 0 ? 'muted' : 'ringing';
}

/** "4:05" for a time left in ms (rounded up to the second). */
export function fmtLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * Incidents that rang here before and are quiet now because someone else took them: [{inc, names}]
 * (the console says "H-1042 taken by Ops Li"). before: Set of ids ringing before; byId: Map of incidents.
 */
export function takenElsewhere(before, nowRinging, byId, me) {
  const still = new Set(nowRinging.map((i) => i.id));
  const out = [];
  for (const id of before) {
    if (still.has(id)) continue;
    const inc = byId.get(id);
    if (!inc || !(inc.acknowledged_by || []).length || takenByMe(inc, me)) continue;
    out.push({ inc, names: takenBy(inc).filter((n, i, all) => all.indexOf(n) === i) });
  }
  return out;
}
