// The resident's box for adding to a sent request (incident.note): more about what happened, or where
// they are when the browser gave no position. It stays under the status while the request is open;
// each line sent is said to be received, with the time, or said not to be, with the text kept to retry.
import { t } from './i18n.js';
import { tid, notify, errorText, fmtTime } from './ui.js';
import { FINAL } from './status.js';

const els = {
  form: document.getElementById('add-note-form'),
  label: document.getElementById('add-note-label'),
  text: tid('add-note'),
  send: tid('add-note-send'),
  status: tid('add-note-status'),
};

/**
 * @param {object} o
 * @param {import('./ws.js').Socket} o.sock
 * @param {() => object|null} o.current     the incident on screen
 * @param {(incident) => void} o.show        show the incident the server answered
 * @param {() => boolean} o.noPosition       whether the request went without a usable position
 */
export function noteBox({ sock, current, show, noPosition }) {
  let sending = false;
  let shownFor = null; // the incident the last "received" line is about

  async function send(ev) {
    ev.preventDefault();
    const inc = current();
    if (sending || !inc || FINAL.has(inc.status)) return;
    const text = els.text.value.trim();
    if (!text) {
      els.text.focus(); // nothing to send (a stray tap lands here too): no alarm, just the box to write in
      return;
    }
    sending = true;
    els.send.disabled = true;
    notify(els.status, t('resident.addNoteSending'), 'info');
    try {
      const r = await sock.request('incident.note', { incident_id: inc.id, text });
      if (els.text.value.trim() === text) els.text.value = '';
      shownFor = inc.id;
      notify(els.status, t('resident.addNoteSent', { time: fmtTime(new Date().toISOString()) }), 'info');
      show(r.incident);
    } catch (e) {
      // kept in the box: one more press sends it again
      const why = e.code === 'conflict' ? t('resident.addNoteClosed') : errorText(e);
      notify(els.status, `${t('resident.addNoteFailed')} ${why}`, 'error');
    } finally {
      sending = false;
      els.send.disabled = false;
    }
  }

  /** After every change of the incident on screen (or none). */
  function paint() {
    const inc = current();
    const open = !!inc && !FINAL.has(inc.status);
    els.form.hidden = !open;
    els.label.textContent = t(noPosition() ? 'resident.addNoteLabelNoPos' : 'resident.addNoteLabel');
    if (!inc || inc.id !== shownFor) notify(els.status, ''); // an old "received" is not about this request
    if (!inc) els.text.value = '';
  }

  els.form.addEventListener('submit', send);
  return { paint };
}
