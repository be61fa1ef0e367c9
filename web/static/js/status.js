// The status words of contract §3 and what the pages take them to mean, in one place.
// Pure data and functions: no DOM, safe to import anywhere (and from Node's test runner).
//
// incident: queued → offered → assigned → en_route → on_scene → resolved;
//           also escalated (no responder took it: a dispatcher must act) and cancelled.
// case:     filed → in_mediation → agreement_proposed → settled; also failed, referred, withdrawn.

/** An incident in one of these is over: off the queue and the map, nothing more to do. */
export const FINAL = new Set(['resolved', 'cancelled']);

/** A responder holds the incident (it is theirs to progress). */
export const WORKING = new Set(['assigned', 'en_route', 'on_scene']);

/** The responder's steps, in order; the first is where an accepted offer starts. */
export const PROGRESS = ['assigned', 'en_route', 'on_scene', 'resolved'];

/** A dispatcher may set the position of an incident in these (incident.locate). */
export const LOCATABLE = new Set(['queued', 'escalated']);

/** The dispatcher's queue order: escalated first, then by priority (1 is the most urgent), then the oldest. */
export function queueOrder(a, b) {
  const ea = a.status === 'escalated' ? 0 : 1;
  const eb = b.status === 'escalated' ? 0 : 1;
  return ea - eb || a.priority - b.priority || Date.parse(a.created_at) - Date.parse(b.created_at);
}

/** A mediation case in one of these is closed: it can be read, not changed. */
export const CASE_FINAL = new Set(['settled', 'failed', 'referred', 'withdrawn']);

/** The parties are talking: the case's mediator may propose (or revise) an agreement. */
export const CASE_TALKING = new Set(['in_mediation', 'agreement_proposed']);

// the kinds of agency account (infra/agency_types.py; tests/unit/test_web_facts.py keeps the two equal)
export const AGENCY_TYPES = ['court', 'police', 'justice', 'womens_federation', 'civil_affairs', 'security_committee',
  'party_service', 'other'];
