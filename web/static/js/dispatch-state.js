// The dispatcher console's bookkeeping without a page (no DOM, no socket): which copy of an
// incident or responder is the newest, who can be assigned, and a typed coordinate.
// Tested on its own by web/tests/dispatch-state.test.mjs (node --test).

/**
 * The newest updated_at seen per id, closed and off-duty ones included, so that an older copy
 * (a push and an answer can cross, a snapshot can be older than a push) never overwrites a newer.
 */
export class Versions {
  constructor() {
    this.seen = new Map(); // id -> updated_at (ms)
  }

  /** Is obj at least as new as every copy seen (then it is remembered)? No parsable updated_at: yes. */
  admit(obj) {
    const at = Date.parse(obj.updated_at);
    const seen = this.seen.get(obj.id);
    if (Number.isNaN(at)) return true;
    if (seen !== undefined && at < seen) return false;
    this.seen.set(obj.id, at);
    return true;
  }

  clear() {
    this.seen.clear();
  }
}

/**
 * The responders who can be assigned to inc, nearest first: [{r, km}], km Infinity when either
 * position is unknown. distance(lat1, lon1, lat2, lon2) -> km (ui.js distanceKm).
 */
export function candidates(inc, responders, distance) {
  return [...responders]
    .filter((r) => r.status === 'available')
    .map((r) => ({ r, km: r.lat !== null && inc.lat !== null ? distance(inc.lat, inc.lon, r.lat, r.lon) : Infinity }))
    .sort((a, b) => a.km - b.km);
}

/** A typed latitude (limit 90) or longitude (limit 180), a decimal comma allowed; null if not one. */
export function parseCoord(text, limit) {
  const v = Number(text.trim().replace(',', '.'));
  return text.trim() !== '' && Number.isFinite(v) && Math.abs(v) <= limit ? v : null;
}
