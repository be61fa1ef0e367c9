// The responder's job card: what to navigate by and how to reach the person who asked.
// The reporter's phone comes from the server only to the responder working the job (assigned,
// en route, on scene) and only when it is known; the card shows a call link only then.
import { t } from './i18n.js';
import { tid } from './ui.js';
import { WORKING } from './status.js';
import { telHref, phoneText, mapLinks, shownName } from './job-facts.js';

const els = {
  ref: document.getElementById('job-ref'),
  status: tid('incident-status'),
  category: document.getElementById('job-category'),
  reporter: document.getElementById('job-reporter'),
  place: document.getElementById('job-distance'),
  maps: document.getElementById('job-maps'),
  mapApp: document.getElementById('job-map-app'),
  mapWeb: document.getElementById('job-map'),
  note: document.getElementById('job-note'),
  call: document.getElementById('job-call'),
  phone: document.getElementById('job-phone'),
  noPhone: document.getElementById('job-no-phone'),
};

/**
 * Paint the facts of `job`; `distance` is "350 m away" from the responder's own position, or ''.
 */
export function paintJobFacts(job, distance) {
  els.ref.textContent = job.ref_no;
  els.status.dataset.status = job.status;
  els.status.textContent = t(`status.${job.status}`);
  els.category.textContent = t(`category.${job.category}`);
  // never a phone number as a name, and no name is said plainly, not as "anonymous"
  els.reporter.textContent = shownName(job.reporter && job.reporter.name) || t('common.anonymous');

  const working = WORKING.has(job.status);
  const phone = working && job.reporter ? job.reporter.phone : null;
  const href = telHref(phone);
  els.call.hidden = !href;
  els.noPhone.hidden = !working || !!href;
  if (href) {
    els.call.href = href;
    els.phone.textContent = phoneText(phone);
  } else {
    els.call.removeAttribute('href');
    els.phone.textContent = '';
  }

  const links = mapLinks(job);
  els.maps.hidden = !links;
  if (links) {
    els.mapApp.href = links.geo;
    els.mapWeb.href = links.web;
    const coords = `${job.lat.toFixed(5)}, ${job.lon.toFixed(5)}`;
    els.place.textContent = distance ? `${distance}${t('punct.open')}${coords}${t('punct.close')}` : coords;
  } else {
    els.place.textContent = t('responder.noPosition');
  }
  // the resident's own words, follow-ups included ("where I am" when the position was refused)
  els.note.textContent = job.note || t('responder.nothingSaid');
}
