// The staff's form for people at the counter (issue 13): a mediator or a clerk opens a case for
// visitors (case.open with `parties`, at least two), then hands each person their join code on a
// printable slip that says whether the code was also texted. The same form sent again after a lost
// answer carries the same request_id, so a case is never opened twice.
import { t, onLangChange } from './i18n.js';
import { newId } from './api.js';
import { h, tid, notify, errorText } from './ui.js';
import { openRequest, visitError } from './mediate-state.js';

const MIN_PARTIES = 2;
const MAX_PARTIES = 10;
const $ = (id) => document.getElementById(id);

/** Wire the form for page state S (mediate.js); onCase(case) keeps the case, openCase(id) shows it. */
export function createVisitForm(S, { onCase, openCase }) {
  const section = $('visit');
  const box = $('visit-box');
  const form = $('visit-form');
  const rows = $('visit-rows');
  const addBtn = $('visit-add-party');
  const msg = $('visit-msg');
  const slip = $('visit-slip');
  let pending = null; // {key, id}: the request_id of a form whose answer never came
  let shown = null; // the answer on the slip: {case, invitations}

  function addRow() {
    if (rows.children.length >= MAX_PARTIES) return null;
    const label = (key, input) => h('label', { class: 'field' }, h('span', { data: { i18n: key }, text: t(key) }), input);
    const row = h('div', { class: 'party-row' },
      label('mediate.partyName', h('input', { testid: 'visit-party-name', attrs: { maxlength: 100, autocomplete: 'off' } })),
      label('mediate.partyPhone', h('input', {
        testid: 'visit-party-phone', attrs: { type: 'tel', maxlength: 32, autocomplete: 'off', inputmode: 'tel' },
      })),
      h('button', {
        class: 'btn btn-secondary btn-small remove-party', data: { i18nAriaLabel: 'mediate.removeParty', i18nTitle: 'mediate.removeParty' },
        attrs: { type: 'button', 'aria-label': t('mediate.removeParty'), title: t('mediate.removeParty') },
        text: '×', on: { click: () => { row.remove(); paintRows(); } },
      }));
    rows.append(row);
    paintRows();
    return row;
  }

  function paintRows() {
    const all = [...rows.children];
    for (const r of all) r.querySelector('.remove-party').hidden = all.length <= MIN_PARTIES;
    addBtn.disabled = all.length >= MAX_PARTIES;
  }

  function resetRows() {
    rows.replaceChildren();
    for (let i = 0; i < MIN_PARTIES; i += 1) addRow();
  }

  addBtn.addEventListener('click', () => {
    const row = addRow();
    if (row) row.querySelector('input').focus();
  });

  /** The named rows, each with its input elements (rows left empty are skipped). */
  function parties() {
    const out = [];
    for (const row of rows.children) {
      const nameIn = row.querySelector('[data-testid=visit-party-name]');
      const phoneIn = row.querySelector('[data-testid=visit-party-phone]');
      nameIn.removeAttribute('aria-invalid');
      phoneIn.removeAttribute('aria-invalid');
      const name = nameIn.value.trim();
      const phone = phoneIn.value.replace(/[\s().-]/g, '');
      if (name || phone) out.push({ name, phone, nameIn, phoneIn });
    }
    return out;
  }

  function refuse(text, input) {
    notify(msg, text, 'error');
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const category = tid('visit-category').value;
    const summaryIn = tid('visit-summary');
    const summary = summaryIn.value.trim();
    const named = parties();
    const nameless = named.find((p) => !p.name);
    if (!summary) return refuse(t('mediate.summaryMissing'), summaryIn);
    if (nameless) return refuse(t('mediate.partyNeedsName'), nameless.nameIn);
    if (named.length < MIN_PARTIES) {
      return refuse(t('visit.needTwo'), (named.length ? rows.children[named.length] : rows.children[0])?.querySelector('input'));
    }
    const fields = {
      category, summary, parties: named.map((p) => (p.phone ? { name: p.name, phone: p.phone } : { name: p.name })),
    };
    pending = openRequest(pending, fields, newId);
    fields.request_id = pending.id;
    const btn = tid('visit-submit');
    btn.disabled = true;
    notify(msg, t('visit.sending'), 'info');
    try {
      const r = await S.active.sock.request('case.open', fields);
      pending = null;
      notify(msg, '');
      form.reset();
      resetRows();
      onCase(r.case);
      showSlip(r);
    } catch (e) {
      if (e.code === 'disconnected' || e.code === 'timeout') {
        notify(msg, t('visit.unknown'), 'error'); // pressing again is safe: the same request_id
        return;
      }
      pending = null;
      const why = visitError(e);
      if (why) {
        const p = named[why.index];
        const input = p ? (why.field === 'phone' ? p.phoneIn : p.nameIn) : null;
        return refuse(t(why.key, { n: why.index + 1, name: p ? p.name : '' }), input);
      }
      if (e.code === 'bad_request') return refuse(t('visit.bad'));
      if (e.code === 'rate_limited') return refuse(t('visit.rateLimited'));
      return refuse(`${t('visit.failed')} ${errorText(e)}`);
    } finally {
      btn.disabled = false;
    }
  });

  function showSlip(r) {
    shown = r;
    box.open = false;
    paintSlip();
    slip.focus();
  }

  function paintSlip() {
    slip.hidden = !shown;
    if (!shown) return;
    const c = shown.case;
    const when = new Date(c.created_at).toLocaleString(document.documentElement.lang || undefined,
      { dateStyle: 'medium', timeStyle: 'short' });
    $('slip-title').textContent = t('visit.slipTitle', { ref: c.ref_no });
    $('slip-meta').textContent = t('visit.slipMeta', {
      cat: t(`casecat.${c.category}`), when, name: c.opened_by ? c.opened_by.name : '',
    });
    $('slip-hint').textContent = t('visit.slipHint', { url: `${location.origin}/mediate` });
    $('slip-codes').replaceChildren(...shown.invitations.map((i) => h('li', {
      testid: 'visit-code', data: { code: i.join_code, texted: String(i.texted) },
    },
    h('span', { class: 'name', text: i.name }),
    h('code', { class: 'code', text: i.join_code }),
    h('span', { class: i.texted ? 'sent' : 'hand-over', text: i.texted ? t('visit.texted', { phone: i.phone }) : t(i.phone ? 'visit.notTexted' : 'visit.noPhone') }))));
  }

  $('visit-print').addEventListener('click', () => window.print());
  $('visit-show').addEventListener('click', () => {
    if (!shown) return;
    openCase(shown.case.id);
    $('case').scrollIntoView({ block: 'start' }); // on a phone the case is far below the slip
  });
  $('visit-another').addEventListener('click', () => {
    shown = null;
    paintSlip();
    box.open = true;
    tid('visit-summary').focus();
  });

  onLangChange(paintSlip);
  resetRows();

  /** Show the form to those who may open cases for visitors (open at once for the front desk). */
  function setRole(role) {
    const may = role === 'mediator' || role === 'clerk';
    section.hidden = !may;
    if (!may) {
      shown = null;
      paintSlip();
    } else if (role === 'clerk' && !shown) box.open = true;
  }
  return { setRole };
}
