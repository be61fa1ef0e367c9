// The admin console's accounts: find, create, edit, suspend / reinstate (confirmed), reset a password
// (the code shown once), and the account's open sessions with an End button each.
import { t, onLangChange } from './i18n.js';
import { getJSON, postJSON } from './api.js';
import { tid, h, notify, fmtTime } from './ui.js';
import { refusal, confirmAction } from './admin-ui.js';
import { AGENCY_TYPES } from './status.js';

const ROLES = ['responder', 'dispatcher', 'mediator', 'agency', 'clerk', 'admin'];
const list = (raw) => raw.split(/[,，\s]+/).map((s) => s.trim()).filter(Boolean);

export function accountsPanel({ token }) {
  const panel = document.getElementById('account-panel');
  const form = document.getElementById('account-form');
  const findForm = document.getElementById('find-form');
  const rows = tid('accounts').querySelector('tbody');
  let shown = [];
  let current = null;     // the account being edited, or null when creating

  function fillRoles() {
    const find = document.getElementById('find-role');
    const keep = find.value;
    find.replaceChildren(h('option', { attrs: { value: '' }, text: t('admin.roleAny') }),
      ...ROLES.map((r) => h('option', { attrs: { value: r }, text: t(`role.${r}`) })));
    find.value = keep;
    const role = document.getElementById('f-role');
    const was = role.value;
    role.replaceChildren(...ROLES.map((r) => h('option', { attrs: { value: r }, text: t(`role.${r}`) })));
    role.value = was || 'dispatcher';
  }

  const stateText = (a) => (a.suspended ? t('admin.suspended') : t('admin.active'));

  function paintRows() {
    rows.replaceChildren(...shown.map((a) => h('tr', {
      class: `row${current && current.id === a.id ? ' selected' : ''}`, testid: `account-${a.username}`,
      attrs: { tabindex: 0 }, on: { click: () => edit(a), keydown: (e) => { if (e.key === 'Enter') edit(a); } },
    }, h('td', { text: a.username }), h('td', { text: a.name }), h('td', { text: t(`role.${a.role}`) }),
    h('td', { text: a.phone || '' }), h('td', { text: a.grids.join(', ') }),
    h('td', { class: a.suspended ? 'admin-suspended' : '', text: stateText(a) }))));
    if (!shown.length) rows.replaceChildren(h('tr', {}, h('td', { attrs: { colspan: 6 }, class: 'empty', text: t('admin.none') })));
  }

  async function find() {
    const qs = new URLSearchParams();
    const q = tid('find-q').value.trim();
    if (q) qs.set('q', q);
    if (tid('find-role').value) qs.set('role', tid('find-role').value);
    const grid = tid('find-grid').value.trim();
    if (grid) qs.set('grid', grid);
    if (tid('find-state').value) qs.set('suspended', tid('find-state').value);
    const msg = tid('find-msg');
    try {
      shown = (await getJSON(`/api/admin/accounts?${qs}`, token())).accounts;
      notify(msg, t('admin.found', { n: shown.length }), 'info');
      paintRows();
    } catch (e) {
      notify(msg, refusal(e), 'error');
    }
  }

  function showForm(a) {
    current = a;
    panel.hidden = false;
    notify(tid('f-msg'), '');
    notify(tid('action-msg'), '');
    tid('code-box').hidden = true;
    document.getElementById('form-title').textContent = a ? t('admin.editTitle', { name: a.username }) : t('admin.newTitle');
    tid('f-username').value = a ? a.username : '';
    tid('f-role').value = a ? a.role : 'dispatcher';
    tid('f-name').value = a ? a.name : '';
    tid('f-phone').value = a ? a.phone || '' : '';
    tid('f-skills').value = a ? a.skills.join(', ') : '';
    tid('f-grids').value = a ? a.grids.join(', ') : '';
    tid('f-supervisor').checked = !!(a && a.supervisor);
    tid('f-area').checked = !!(a && a.area_limited);
    fillAgencyTypes();
    tid('f-agency-type').value = (a && a.agency_type) || 'other';
    tid('f-password').value = '';
    fitRole();
    document.getElementById('f-password-field').hidden = !!a;
    document.getElementById('account-actions').hidden = !a;
    document.getElementById('sessions-box').hidden = !a;
    if (a) {
      tid('suspend').hidden = a.suspended;
      tid('reinstate').hidden = !a.suspended;
      loadSessions();
    }
    paintRows();
    tid('f-username').focus();
  }

  /** Only the fields the chosen role has (infra/accounts.py: skills, supervisor, area_limited). */
  function fitRole() {
    const role = tid('f-role').value;
    document.getElementById('f-skills-field').hidden = role !== 'responder';
    document.getElementById('f-supervisor-field').hidden = !['dispatcher', 'admin'].includes(role);
    document.getElementById('f-area-field').hidden = role !== 'dispatcher';
    document.getElementById('f-agency-field').hidden = role !== 'agency';
  }

  /** The kinds of agency (infra/agency_types.py), in the page's language. */
  function fillAgencyTypes() {
    const sel = tid('f-agency-type');
    const was = sel.value;
    sel.replaceChildren(...AGENCY_TYPES.map((k) => h('option', { attrs: { value: k }, text: t(`agency_type.${k}`) })));
    if (was) sel.value = was;
  }

  function edit(a) {
    showForm(a);
  }

  function formBody() {
    const body = {
      username: tid('f-username').value.trim(), role: tid('f-role').value, name: tid('f-name').value.trim(),
      phone: tid('f-phone').value.trim(), grids: list(tid('f-grids').value),
      supervisor: tid('f-supervisor').checked, area_limited: tid('f-area').checked,
    };
    if (body.role === 'responder') body.skills = list(tid('f-skills').value);
    if (!['dispatcher', 'admin'].includes(body.role)) delete body.supervisor;
    if (body.role !== 'dispatcher') delete body.area_limited;
    if (body.role === 'agency') body.agency_type = tid('f-agency-type').value;
    return body;
  }

  function changed(body) {
    const out = {};
    for (const [k, v] of Object.entries(body)) {
      const was = current[k] === null || current[k] === undefined ? '' : current[k];
      if (JSON.stringify(v) !== JSON.stringify(was)) out[k] = v;
    }
    return out;
  }

  async function save(ev) {
    ev.preventDefault();
    const msg = tid('f-msg');
    const body = formBody();
    try {
      if (current) {
        const diff = changed(body);
        if (!Object.keys(diff).length) {
          notify(msg, t('admin.nothingChanged'), 'info');
          return;
        }
        const r = await postJSON(`/api/admin/accounts/${current.id}`, diff, token());
        replace(r.account);
        showForm(r.account);
        notify(tid('action-msg'), t('admin.saved'), 'ok');
      } else {
        if (!body.phone) delete body.phone;
        if (!body.name) delete body.name;
        const pw = tid('f-password').value;
        if (pw) body.password = pw;
        const r = await postJSON('/api/admin/accounts', body, token());
        shown = [r.account, ...shown];
        notify(tid('find-msg'), t('admin.found', { n: shown.length }), 'info');
        showForm(r.account);
        notify(tid('action-msg'), t('admin.created', { name: r.account.username }), 'ok');
        if (r.reset) showCode(r.reset);
      }
    } catch (e) {
      notify(msg, refusal(e), 'error');
    }
  }

  function replace(a) {
    shown = shown.map((x) => (x.id === a.id ? a : x));
    current = a;
  }

  function showCode(reset) {
    tid('code').textContent = reset.code;
    tid('code-expires').textContent = new Date(reset.expires_at).toLocaleString();
    tid('code-box').hidden = false;
  }

  async function suspension(suspend) {
    const a = current;
    if (suspend && !(await confirmAction(t('admin.confirmSuspend', { name: a.username }), t('admin.suspend')))) return;
    const msg = tid('action-msg');
    try {
      const r = await postJSON(`/api/admin/accounts/${a.id}/${suspend ? 'suspend' : 'reinstate'}`, {}, token());
      replace(r.account);
      showForm(r.account);
      notify(msg, suspend ? t('admin.suspendedDone', { name: a.username }) : t('admin.reinstatedDone', { name: a.username }), 'ok');
    } catch (e) {
      notify(msg, refusal(e), 'error');
    }
  }

  async function reset() {
    const a = current;
    if (!(await confirmAction(t('admin.confirmReset', { name: a.username }), t('admin.reset')))) return;
    try {
      showCode(await postJSON(`/api/admin/accounts/${a.id}/reset`, {}, token()));
      notify(tid('action-msg'), '');
    } catch (e) {
      notify(tid('action-msg'), refusal(e), 'error');
    }
  }

  async function loadSessions() {
    const a = current;
    const ul = tid('sessions');
    try {
      const { sessions } = await getJSON(`/api/admin/accounts/${a.id}/sessions`, token());
      if (current !== a) return;
      ul.replaceChildren(...sessions.map((s) => h('li', { class: 'admin-session', testid: 'session' },
        h('span', { text: t('admin.sessionLine', { since: fmtTime(s.since), address: s.address || '?', node: s.node }) }),
        h('span', { class: 'muted', text: s.user_agent || '' }),
        h('button', { class: 'btn btn-secondary btn-small', testid: 'session-end', attrs: { type: 'button' },
          text: t('admin.end'), on: { click: () => endSession(s) } }))));
      if (!sessions.length) ul.replaceChildren(h('li', { class: 'empty', text: t('admin.noSessions') }));
    } catch (e) {
      ul.replaceChildren(h('li', { class: 'msg', text: refusal(e) }));
    }
  }

  async function endSession(s) {
    if (!(await confirmAction(t('admin.confirmEnd', { name: current.username }), t('admin.end')))) return;
    try {
      await postJSON(`/api/admin/accounts/${current.id}/sessions/end`, { session: s.id }, token());
      notify(tid('action-msg'), t('admin.ended'), 'ok');
    } catch (e) {
      notify(tid('action-msg'), refusal(e), 'error');
    }
    setTimeout(loadSessions, 500);      // the closing socket leaves the listing as its node sees it close
  }

  findForm.addEventListener('submit', (ev) => { ev.preventDefault(); find(); });
  tid('new-account').addEventListener('click', () => showForm(null));
  tid('f-cancel').addEventListener('click', () => { panel.hidden = true; current = null; paintRows(); });
  form.addEventListener('submit', save);
  tid('f-role').addEventListener('change', fitRole);
  tid('suspend').addEventListener('click', () => suspension(true));
  tid('reinstate').addEventListener('click', () => suspension(false));
  tid('reset').addEventListener('click', reset);
  tid('sessions-refresh').addEventListener('click', loadSessions);
  onLangChange(() => { fillRoles(); fillAgencyTypes(); paintRows(); });
  fillRoles();
  find();
}
