// The reports page (/reports, issue 16): period, grouping and area at the top; the table of
// GET /api/reports/incidents or /cases; two charts drawn by the vendored Chart.js (window.Chart):
// response-time percentiles per group and outcomes stacked per group. Printable (app.css @media print).
import { t, applyI18n, onLangChange } from './i18n.js';
import { getJSON, postJSON, store } from './api.js';
import { tid, h, setupChrome, notify } from './ui.js';

const KEY = 'helpline.reports.session';
const ROLES = { incidents: ['dispatcher', 'admin'], cases: ['mediator', 'admin'] };
const GROUPINGS = {
  incidents: ['category', 'grid', 'channel', 'day', 'week', 'month'],
  cases: ['category', 'grid', 'agency', 'month'],
};
const COLUMNS = {
  incidents: ['received', 'escalated', 'resolved', 'cancelled', 'false_alarms',
    'press_to_first_offer', 'press_to_assigned', 'assigned_to_on_scene', 'press_to_resolved',
    'offer_acceptance', 'offers_per_incident', 'assigned_within_target'],
  cases: ['filed', 'taken', 'settled', 'failed', 'referred', 'withdrawn', 'overdue', 'days_to_take', 'days_to_close',
    'satisfaction_answers', 'satisfaction_mean'],
};
const PCT = { incidents: ['p50', 'p90', 'p95'], cases: ['p50', 'p90'] };
const SHARES = new Set(['offer_acceptance', 'assigned_within_target']);

let session = store.get(KEY);
let last = null;        // {kind, body}
const charts = {};

const $ = (id) => document.getElementById(id);

function isoDay(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function kind() {
  return $('rp-kind').value;
}

function fillGroupings() {
  const sel = $('rp-by');
  const keep = sel.value;
  sel.replaceChildren(...GROUPINGS[kind()].map((g) => h('option', { attrs: { value: g }, text: t(`reports.by.${g}`) })));
  if (GROUPINGS[kind()].includes(keep)) sel.value = keep;
}

function query(format) {
  const p = new URLSearchParams({ from: $('rp-from').value, to: $('rp-to').value, by: $('rp-by').value });
  const grid = $('rp-grid').value.trim();
  if (grid) p.set('grid', grid);
  if (format) p.set('format', format);
  return `/api/reports/${kind()}?${p}`;
}

function num(v, share) {
  if (v === null || v === undefined) return '—';
  if (share) return `${(v * 100).toFixed(1)}%`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function label(row, by) {
  if (row.group === null) return t('reports.total');
  if (by === 'agency') return row.group === '' ? t('reports.notReferred') : t(`agency_type.${row.group}`);
  if (row.group === '') return t('reports.noGrid');
  return row.label && row.label !== row.group ? `${row.label} (${row.group})` : row.group;
}

function renderTable(k, body) {
  const cols = COLUMNS[k];
  const head = h('tr', {}, h('th', { attrs: { scope: 'col' }, text: t(`reports.by.${body.by}`) }),
    cols.flatMap((c) => (PCT[k] && typeof body.total[c] === 'object' && body.total[c] !== null
      ? PCT[k].map((p) => h('th', { attrs: { scope: 'col' }, text: `${t(`reports.col.${c}`)} ${p}` }))
      : [h('th', { attrs: { scope: 'col' }, text: t(`reports.col.${c}`) })])));
  const line = (row, cls) => h('tr', { class: cls || '' },
    h('th', { attrs: { scope: 'row' }, text: label(row, body.by) }),
    cols.flatMap((c) => (typeof row[c] === 'object' && row[c] !== null
      ? PCT[k].map((p) => h('td', { text: num(row[c][p]) }))
      : [h('td', { text: num(row[c], SHARES.has(c)) })])));
  $('rp-table').replaceChildren(h('thead', {}, head),
    h('tbody', {}, body.rows.map((r) => line(r)), line(body.total, 'rp-total')));
}

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  // eslint-disable-next-line no-undef
  charts[id] = new window.Chart($(id), { ...config, options: { animation: false, responsive: true, ...config.options } });
}

function renderCharts(k, body) {
  const labels = body.rows.map((r) => label(r, body.by));
  if (k === 'incidents') {
    draw('rp-chart-times', {
      type: body.by === 'day' || body.by === 'week' || body.by === 'month' ? 'line' : 'bar',
      data: {
        labels,
        datasets: [
          { label: `${t('reports.col.press_to_assigned')} p50`, data: body.rows.map((r) => r.press_to_assigned.p50), backgroundColor: '#2b6cb0', borderColor: '#2b6cb0' },
          { label: `${t('reports.col.press_to_assigned')} p90`, data: body.rows.map((r) => r.press_to_assigned.p90), backgroundColor: '#dd6b20', borderColor: '#dd6b20' },
        ],
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: t('reports.seconds') } } } },
    });
    $('rp-times-caption').textContent = t('reports.chartTimes');
    const open = (r) => r.received - r.resolved - r.cancelled - r.false_alarms;
    draw('rp-chart-outcomes', {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: t('reports.col.resolved'), data: body.rows.map((r) => r.resolved), backgroundColor: '#2f855a' },
          { label: t('reports.col.cancelled'), data: body.rows.map((r) => r.cancelled), backgroundColor: '#a0aec0' },
          { label: t('reports.col.false_alarms'), data: body.rows.map((r) => r.false_alarms), backgroundColor: '#c53030' },
          { label: t('reports.open'), data: body.rows.map(open), backgroundColor: '#d69e2e' },
        ],
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  } else {
    draw('rp-chart-times', {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: `${t('reports.col.days_to_take')} p50`, data: body.rows.map((r) => r.days_to_take.p50), backgroundColor: '#2b6cb0' },
          { label: `${t('reports.col.days_to_close')} p50`, data: body.rows.map((r) => r.days_to_close.p50), backgroundColor: '#dd6b20' },
        ],
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: t('reports.days') } } } },
    });
    $('rp-times-caption').textContent = t('reports.chartDays');
    draw('rp-chart-outcomes', {
      type: 'bar',
      data: {
        labels,
        datasets: ['settled', 'failed', 'referred', 'withdrawn'].map((c, i) => ({
          label: t(`reports.col.${c}`), data: body.rows.map((r) => r[c]),
          backgroundColor: ['#2f855a', '#c53030', '#6b46c1', '#a0aec0'][i],
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
  }
  $('rp-outcomes-caption').textContent = t('reports.chartOutcomes');
}

function render() {
  if (!last) return;
  const { kind: k, body } = last;
  $('rp-caption').textContent = t(`reports.caption.${k}`, { from: body.from, to: body.to });
  renderTable(k, body);
  renderCharts(k, body);
}

async function show() {
  const msg = $('rp-msg');
  notify(msg, t('reports.loading'), 'info');
  try {
    const body = await getJSON(query(), session.token);
    last = { kind: kind(), body };
    notify(msg, '');
    render();
  } catch (e) {
    if (e.status === 401) {
      signOut(t('login.bad'));
      return;
    }
    notify(msg, e.status === 403 ? t('reports.forbidden') : e.message || t('login.failed'), 'error');
  }
}

async function downloadCsv() {
  const r = await fetch(query('csv'), { headers: { Authorization: `Bearer ${session.token}` } });
  if (!r.ok) {
    notify($('rp-msg'), t('reports.forbidden'), 'error');
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  const a = h('a', { attrs: { href: url, download: `${kind()}-${$('rp-by').value}-${$('rp-from').value}-${$('rp-to').value}.csv` } });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

function signIn() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  document.querySelector('.whoami').textContent = session.account.name || session.account.username || '';
  const role = session.account.role;
  if (!ROLES.incidents.includes(role)) $('rp-kind').value = 'cases';
  for (const opt of $('rp-kind').options) opt.disabled = !ROLES[opt.value].includes(role);
  fillGroupings();
  show();
}

function signOut(reason) {
  session = null;
  store.set(KEY, null);
  $('login').hidden = false;
  $('app').hidden = true;
  $('logout').hidden = true;
  document.querySelector('.whoami').textContent = '';
  notify($('login-msg'), reason || '', 'error');
}

function start() {
  applyI18n();
  setupChrome(null);
  const today = new Date();
  $('rp-to').value = isoDay(today);
  $('rp-from').value = isoDay(new Date(today.getTime() - 29 * 86400000));
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = tid('username').value.trim();
    const password = tid('password').value;
    if (!username || !password) {
      notify($('login-msg'), t('login.missing'), 'error');
      return;
    }
    try {
      const r = await postJSON('/api/auth/login', { username, password });
      if (![...ROLES.incidents, ...ROLES.cases].includes(r.account.role)) {
        notify($('login-msg'), t('login.wrongRole'), 'error');
        return;
      }
      session = { token: r.token, account: r.account };
      store.set(KEY, session);
      tid('password').value = '';
      notify($('login-msg'), '');
      signIn();
    } catch (e) {
      notify($('login-msg'), e.status === 401 ? t('login.bad') : t('login.failed'), 'error');
    }
  });
  $('logout').addEventListener('click', () => signOut());
  $('rp-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    show();
  });
  $('rp-kind').addEventListener('change', () => {
    fillGroupings();
    show();
  });
  $('rp-csv').addEventListener('click', downloadCsv);
  $('rp-print').addEventListener('click', () => window.print());
  onLangChange(() => {
    fillGroupings();
    render();
  });
  if (session && session.token) signIn();
  else signOut();
}

start();
