// What the pages say about an incident's facts, as pure functions (no DOM: tested by web/tests/job-facts.test.mjs):
// links a phone can act on (call, map), names that are never phone numbers, and the true reason an
// incident waits for a dispatcher.

/** "tel:" for a phone number as the server sends it (E.164), or null when there is none. */
export function telHref(phone) {
  const digits = String(phone || '').replace(/[^0-9+]/g, '');
  return digits.replace(/\D/g, '').length >= 3 ? `tel:${digits}` : null;
}

/** A number as people read it aloud: "+86 138 0013 8000" (Chinese mobiles), else as given. */
export function phoneText(phone) {
  const p = String(phone || '');
  const cn = /^\+86(1\d{2})(\d{4})(\d{4})$/.exec(p);
  return cn ? `+86 ${cn[1]} ${cn[2]} ${cn[3]}` : p;
}

/** Whether a position is there to navigate to. */
export function hasPosition(inc) {
  return !!inc && Number.isFinite(inc.lat) && Number.isFinite(inc.lon);
}

/**
 * Map links for a position: `geo` opens the phone's own map app (Android, and iOS apps that take it),
 * `web` an OpenStreetMap page with a marker that works in any browser. Null without a position.
 */
export function mapLinks(inc) {
  if (!hasPosition(inc)) return null;
  const lat = inc.lat.toFixed(6);
  const lon = inc.lon.toFixed(6);
  return {
    geo: `geo:${lat},${lon}?q=${lat},${lon}`,
    web: `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=18/${lat}/${lon}`,
  };
}

// 7 or more digits however spaced, dashed or bracketed, not glued to a word before them (the server's
// rule, infra/accounts.py looks_like_phone; here any non-ASCII letter counts as a separator: stricter)
const PHONE_IN_NAME = /(?:^|[^A-Za-z0-9-])\+?\(?\d(?:[\s().\-/]{0,2}\d){6,}/;

/** A name to show, or '' when there is none or it is a phone number (a number is never shown as a name). */
export function shownName(name) {
  const n = String(name || '').trim();
  return !n || PHONE_IN_NAME.test(n.normalize('NFKC')) ? '' : n;
}

/** Why an escalated incident waits, as a key suffix the strings know ('' when unknown or not escalated). */
export const ESCALATION_REASONS = new Set([
  'no_candidate', 'declined', 'no_answer', 'preempted', 'handed_back', 'max_offers', 'no_position',
  'bad_position', 'flood_hold',
]);

export function escalationReason(inc) {
  if (!inc || inc.status !== 'escalated') return '';
  return ESCALATION_REASONS.has(inc.escalation_reason) ? inc.escalation_reason : '';
}

/** The incident went back to dispatch from a responder who had it, and nobody has it yet. */
export function handedBack(inc) {
  return !!inc && (inc.flags || []).includes('handed_back') && ['queued', 'offered'].includes(inc.status);
}
