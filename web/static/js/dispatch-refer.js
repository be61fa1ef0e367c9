// Referring a dispute into mediation from the dispatch console (issue 15, `incident.refer`): the
// incident panel of an open `dispute` offers a short form (what it is about, the other party's name and
// mobile); on success the incident closes `referred` and the panel names the case.
import { t } from './i18n.js';
import { notify, errorText } from './ui.js';
import { FINAL } from './status.js';

/**
 * @param {object} o
 * @param {HTMLFormElement} o.form  holds [data-testid=refer-summary|refer-other-name|refer-other-phone|refer], .msg
 * @param {() => object|null} o.selected  the incident on the panel
 * @param {(fields: object) => Promise<{case: object, incident: object}>} o.refer
 * @param {(incident: object) => void} o.done
 */
export function referControl({ form, selected, refer, done }) {
  const field = (id) => form.querySelector(`[data-testid="${id}"]`);
  const summary = field('refer-summary');
  const name = field('refer-other-name');
  const phone = field('refer-other-phone');
  const button = field('refer');
  const msg = form.querySelector('.msg');
  let shownFor = null;

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const inc = selected();
    if (!inc) return;
    if (!summary.value.trim()) {
      notify(msg, t('dispatch.referNeedsSummary'), 'error');
      summary.focus();
      return;
    }
    if (!name.value.trim()) {
      notify(msg, t('dispatch.referNeedsName'), 'error');
      name.focus();
      return;
    }
    const other = { name: name.value.trim() };
    const tel = phone.value.replace(/[\s().-]/g, '');
    if (tel) other.phone = tel;
    button.disabled = true;
    try {
      const r = await refer({ incident_id: inc.id, summary: summary.value.trim(), other_parties: [other] });
      notify(msg, t('dispatch.referredCase', { ref: r.case.ref_no }), 'ok');
      done(r.incident);
    } catch (e) {
      notify(msg, `${t('dispatch.referFailed')} ${errorText(e)}`, 'error');
    } finally {
      button.disabled = false;
    }
  });

  return {
    /** Show the form for an open dispute; a newly selected incident starts empty. */
    paint(inc) {
      form.hidden = !(inc && inc.category === 'dispute' && !FINAL.has(inc.status));
      const id = inc ? inc.id : null;
      if (id !== shownFor) {
        shownFor = id;
        summary.value = '';
        name.value = '';
        phone.value = '';
        notify(msg, '');
      }
    },
  };
}
