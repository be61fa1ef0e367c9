// The agency directory on /mediate (issue 15): the case's mediator picks the agency to invite from
// `agencies.list`, filtered by type and by a part of the name, those covering the case's area first.
// A radio group: Tab reaches it, the arrow keys move the choice, Enter in the search box or the button
// invites. Agencies already in the case are shown, not choosable.
import { t } from './i18n.js';
import { h, notify } from './ui.js';
import { $ } from './mediate-view.js';

const SEARCH_PAUSE_MS = 250;

/** Wire the picker. `S`: the page state; `msgFor`: where a control's message goes; `onCase`: keep a case. */
export function createAgencyPicker(S, { msgFor, onCase }) {
  const form = $('invite-form');
  const kind = $('agency-type');
  const search = $('agency-search');
  const list = $('agency-list');
  const none = $('agency-none');
  const invite = form.querySelector('[data-testid="invite"]');
  let shown = []; // the last answer, repainted on a language change
  let asked = 0; // answers to older questions are dropped
  let timer = null;

  const openCase = () => (S.openId ? S.book.get(S.openId) : null);

  async function load() {
    const c = openCase();
    if (!c || !S.active || !$('tools').open) return;
    const fields = { case_id: c.id };
    if (kind.value) fields.agency_type = kind.value;
    const q = search.value.trim();
    if (q) fields.q = q;
    const mine = ++asked;
    try {
      const r = await S.active.sock.request('agencies.list', fields);
      if (mine !== asked) return;
      shown = r.agencies || [];
      paint();
    } catch (e) {
      if (mine === asked) notify(msgFor(search), t('agency.loadFailed'), 'error');
    }
  }

  function paint() {
    const c = openCase();
    const invited = new Set(((c && c.agencies) || []).map((a) => a.id));
    const picked = list.querySelector('input:checked');
    const keep = picked ? picked.value : null;
    list.replaceChildren(...shown.map((a) => {
      const already = invited.has(a.id);
      const radio = h('input', { attrs: { type: 'radio', name: 'agency', value: a.id, disabled: already,
        checked: !already && a.id === keep } });
      return h('label', { class: `agency-option${already ? ' already' : ''}`, testid: 'agency-option',
        data: { agencyId: a.id, agencyType: a.agency_type } },
        radio,
        h('span', { class: 'name', text: a.name }),
        h('span', { class: 'tag', text: t(`agency_type.${a.agency_type}`) }),
        a.covers_case ? h('span', { class: 'tag tag-ok', text: t('agency.covers') }) : null,
        already ? h('span', { class: 'tag', text: t('agency.already') }) : null);
    }));
    none.hidden = shown.length > 0;
  }

  $('tools').addEventListener('toggle', () => { if ($('tools').open) load(); });
  kind.addEventListener('change', load);
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(load, SEARCH_PAUSE_MS);
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const picked = list.querySelector('input:checked');
    if (!picked) {
      notify(msgFor(invite), t('agency.pickFirst'), 'error');
      (list.querySelector('input:not(:disabled)') || search).focus();
      return;
    }
    notify(msgFor(invite), '');
    invite.disabled = true;
    try {
      const r = await S.active.sock.request('case.invite', { case_id: S.openId, account_id: picked.value });
      if (r.case) onCase(r.case);
      notify(msgFor(invite), t('mediate.invited'), 'ok');
      paint();
    } catch (e) {
      const key = { not_found: 'mediate.agencyNotFound', bad_request: 'mediate.agencyNotAgency' }[e.code];
      notify(msgFor(invite), key ? t(key) : e.message || String(e), 'error');
    } finally {
      invite.disabled = false;
    }
  });

  // where a case closed `referred` went: an agency of the directory, or a body outside the system
  const outcome = form.ownerDocument.querySelector('[data-testid="close-outcome"]');
  const referredBox = $('referred-to-box');
  const referredAgency = $('referred-agency');
  const outside = $('referred-outside');
  async function paintReferred() {
    const referring = outcome.value === 'referred';
    referredBox.hidden = !referring;
    if (!referring || !S.active || !S.openId) return;
    try {
      const r = await S.active.sock.request('agencies.list', { case_id: S.openId });
      const keep = referredAgency.value;
      referredAgency.replaceChildren(referredAgency.options[0], ...(r.agencies || []).map((a) => h('option', {
        attrs: { value: a.id, selected: a.id === keep }, text: `${a.name}${t('punct.open')}${t(`agency_type.${a.agency_type}`)}${t('punct.close')}` })));
    } catch (e) {
      // the directory is a convenience here: a body can still be named by hand
    }
    outside.hidden = !!referredAgency.value;
  }
  outcome.addEventListener('change', paintReferred);
  referredAgency.addEventListener('change', () => { outside.hidden = !!referredAgency.value; });

  return {
    /** case.close's `referred_to` for this outcome, or null (nothing chosen or named). */
    referredTo(out) {
      if (out !== 'referred') return null;
      if (referredAgency.value) return { agency_id: referredAgency.value };
      const name = $('referred-name').value.trim();
      return name ? { agency_type: $('referred-type').value, name } : null;
    },
    /** Another case on screen: start over. */
    reset() {
      referredAgency.replaceChildren(referredAgency.options[0]);
      $('referred-name').value = '';
      outside.hidden = false;
      paintReferred();
      shown = [];
      list.replaceChildren();
      none.hidden = true;
      search.value = '';
      kind.value = '';
      if ($('tools').open) load();
    },
    paint,
  };
}
