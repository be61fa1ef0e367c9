// The /mediate page's resident landing: join a case with a code, or open one naming the other
// people in it (up to MAX_PARTIES rows); "my cases" and "new case" switch between the landing and
// the case view. A resident has no login: the first join or open starts the device socket.
import { t } from './i18n.js';
import { newId } from './api.js';
import { h, tid, notify, errorText } from './ui.js';
import { els } from './mediate-view.js';
import { openRequest } from './mediate-state.js';

const MAX_PARTIES = 10;

function joinError(e) {
  if (e.code === 'not_found') return t('mediate.joinNotFound');
  if (e.code === 'conflict') return t('mediate.joinConflict');
  if (e.code === 'rate_limited') return t('mediate.joinRateLimited');
  if (e.code === 'forbidden') return t('mediate.joinForbidden');
  return `${t('mediate.joinFailed')} ${errorText(e)}`;
}

/**
 * Wire the resident's forms for page state S (see mediate.js). The page supplies:
 * view (mediate-view.js), startResident() -> the device socket, onCase(case), openCase(id),
 * loadCases() -> Promise, autoOpen(), becameResident() (remember this browser takes part).
 */
export function createResidentForms(S, { view, startResident, onCase, openCase, loadCases, autoOpen, becameResident }) {
  let pendingOpen = null; // { key, id }: a case.open whose answer never came

  function showResidentApp() {
    els.login.hidden = true;
    els.app.hidden = false;
  }

  function showResidentLanding() {
    els.app.hidden = true;
    els.login.hidden = false;
    view.paintMyCasesButton();
  }

  els.joinForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = tid('join-code');
    const code = input.value.trim();
    if (!code) {
      notify(els.joinMsg, t('mediate.codeMissing'), 'error');
      return;
    }
    const btn = tid('join');
    btn.disabled = true;
    notify(els.joinMsg, t('mediate.joining'), 'info');
    try {
      const r = await startResident().request('case.join', { join_code: code });
      becameResident();
      input.value = '';
      notify(els.joinMsg, '');
      onCase(r.case);
      showResidentApp();
      openCase(r.case.id);
    } catch (e) {
      notify(els.joinMsg, joinError(e), 'error');
    } finally {
      btn.disabled = false;
    }
  });

  function addPartyRow() {
    if (els.partyRows.children.length >= MAX_PARTIES) return;
    const label = (key, input) => h('label', { class: 'field' }, h('span', { data: { i18n: key }, text: t(key) }), input);
    const row = h('div', { class: 'party-row' },
      label('mediate.partyName', h('input', { testid: 'party-name', attrs: { maxlength: 100, autocomplete: 'off' } })),
      label('mediate.partyPhone', h('input', {
        testid: 'party-phone', attrs: { type: 'tel', maxlength: 32, autocomplete: 'off', inputmode: 'tel' },
      })),
      h('button', {
        class: 'btn btn-secondary btn-small remove-party', data: { i18nAriaLabel: 'mediate.removeParty', i18nTitle: 'mediate.removeParty' },
        attrs: { type: 'button', 'aria-label': t('mediate.removeParty'), title: t('mediate.removeParty') },
        text: '×', on: { click: () => { row.remove(); paintPartyRows(); } },
      }));
    els.partyRows.append(row);
    paintPartyRows();
    return row;
  }

  function paintPartyRows() {
    const rows = [...els.partyRows.children];
    for (const r of rows) r.querySelector('.remove-party').hidden = rows.length < 2;
    els.addParty.disabled = rows.length >= MAX_PARTIES;
  }

  els.addParty.addEventListener('click', () => {
    const row = addPartyRow();
    if (row) row.querySelector('input').focus();
  });

  els.openForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const category = tid('case-category').value;
    const summary = tid('case-summary').value.trim();
    const name = tid('my-name').value.trim();
    const others = [];
    for (const row of els.partyRows.children) {
      const n = row.querySelector('[data-testid=party-name]').value.trim();
      const phone = row.querySelector('[data-testid=party-phone]').value.replace(/[\s()-]/g, '');
      if (!n && !phone) continue;
      if (!n) {
        notify(els.openMsg, t('mediate.partyNeedsName'), 'error');
        return;
      }
      others.push(phone ? { name: n, phone } : { name: n });
    }
    if (!summary) {
      notify(els.openMsg, t('mediate.summaryMissing'), 'error');
      return;
    }
    if (!others.length) {
      notify(els.openMsg, t('mediate.othersMissing'), 'error');
      return;
    }
    const btn = tid('open-case');
    btn.disabled = true;
    notify(els.openMsg, t('mediate.opening'), 'info');
    const fields = { category, summary, other_parties: others };
    if (name) fields.name = name;
    // the same form sent again after a lost answer carries the same request_id: the server returns the
    // case it opened then instead of opening a second one
    pendingOpen = openRequest(pendingOpen, fields, newId);
    fields.request_id = pendingOpen.id;
    try {
      const r = await startResident().request('case.open', fields);
      pendingOpen = null;
      becameResident();
      notify(els.openMsg, '');
      els.openForm.reset();
      els.partyRows.replaceChildren();
      addPartyRow();
      onCase(r.case);
      showResidentApp();
      openCase(r.case.id);
    } catch (e) {
      if (e.code === 'bad_request') {
        pendingOpen = null;
        notify(els.openMsg, t('mediate.openBad'), 'error');
      } else if (e.code === 'disconnected' || e.code === 'timeout') {
        // the case may have been opened: pressing open again with the same form is safe (same request_id)
        notify(els.openMsg, t('mediate.openUnknown'), 'error');
        becameResident();
        if (S.active && S.mode === 'resident') loadCases().then(view.paintMyCasesButton);
      } else notify(els.openMsg, `${t('mediate.openFailed')} ${errorText(e)}`, 'error');
    } finally {
      btn.disabled = false;
    }
  });

  els.myCases.addEventListener('click', () => {
    showResidentApp();
    if (!S.openId) autoOpen();
  });
  els.newCase.addEventListener('click', showResidentLanding);

  addPartyRow(); // the form starts with one row for the other person
  return { showResidentApp };
}
