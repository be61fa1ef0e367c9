// One line of an incident's event log, in words: "Responder A. Wang — accepted the offer".
import { t, has } from './i18n.js';

const SKIP = new Set(['incident_id', 'id', 'offer_id', 'case_id']);

function value(key, v, nameOf, kind) {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'object') {
    if (v.name) return v.name;
    if (v.ref_no) return v.ref_no;
    return null;
  }
  if ((key === 'status' || key === 'from' || key === 'to') && has(`status.${v}`)) return t(`status.${v}`);
  if (key === 'responder_id') return nameOf(v) || String(v).slice(0, 8);
  if (key === 'by' && has(`by.${v}`)) return t(`by.${v}`);
  // an escalation's reason says why nobody is coming (not the word an offer ended with)
  if (key === 'reason' && kind === 'escalated' && has(`escalation.${v}`)) return t(`escalation.${v}`);
  if (key === 'reason' && has(`reason.${v}`)) return t(`reason.${v}`);
  if (key === 'disposition' && has(`disposition.${v}`)) return t(`disposition.${v}`);
  if (key === 'category' && has(`category.${v}`)) return t(`category.${v}`);
  if (key === 'channel' && has(`channel.${v}`)) return t(`channel.${v}`);
  return String(v);
}

/** "who — what (details)" as plain text; the caller puts it in with textContent. */
export function eventLine(ev, nameOf = () => null) {
  let who = t('timeline.system');
  if (ev.actor) who = ev.actor.name || (has(`role.${ev.actor.role}`) ? t(`role.${ev.actor.role}`) : who);
  const what = has(`event.${ev.kind}`) ? t(`event.${ev.kind}`) : ev.kind;
  const details = [];
  for (const [k, v] of Object.entries(ev.data || {})) {
    if (SKIP.has(k)) continue;
    const text = value(k, v, nameOf, ev.kind);
    if (text === null) continue;
    const label = has(`field.${k}`) ? t(`field.${k}`) : k;
    details.push(`${label}${t('punct.colon')}${text}`);
  }
  // Chinese takes its own punctuation (——：；（）), not ASCII's
  const more = details.length ? `${t('punct.open')}${details.join(t('punct.semi'))}${t('punct.close')}` : '';
  return `${who}${t('punct.dash')}${what}${more}`;
}
