// The admin console's audit log: filters (who, what, period), a page at a time, and the same as CSV.
import { t } from './i18n.js';
import { getJSON, HttpError } from './api.js';
import { tid, h, notify } from './ui.js';
import { refusal } from './admin-ui.js';

export function auditPanel({ token }) {
  const rows = tid('audit').querySelector('tbody');
  const more = tid('a-more');
  let next = null;

  function query() {
    const qs = new URLSearchParams();
    const put = (k, v) => { if (v) qs.set(k, v); };
    put('actor', tid('a-actor').value.trim());
    put('subject', tid('a-subject').value.trim());
    put('since', tid('a-since').value);
    put('until', tid('a-until').value);
    return qs;
  }

  const row = (e) => h('tr', { testid: 'audit-row' },
    h('td', { class: 'age', text: new Date(e.at).toLocaleString() }),
    h('td', { text: e.actor || e.actor_id || t('admin.system') }),
    h('td', { text: e.action }),
    h('td', { text: [e.subject_type, e.subject_name || e.subject_id].filter(Boolean).join(' ') }),
    h('td', { text: e.address || '' }));

  async function show(append) {
    const qs = query();
    if (append && next) qs.set('after', next);
    const msg = tid('a-msg');
    try {
      const r = await getJSON(`/api/admin/audit?${qs}`, token());
      if (!append) rows.replaceChildren();
      rows.append(...r.entries.map(row));
      next = r.next_after;
      more.hidden = !next;
      notify(msg, rows.children.length ? '' : t('admin.none'), 'info');
    } catch (e) {
      notify(msg, refusal(e), 'error');
    }
  }

  async function download() {
    const msg = tid('a-msg');
    try {
      const r = await fetch(`/api/admin/audit.csv?${query()}`, { headers: { Authorization: `Bearer ${token()}` } });
      if (!r.ok) {
        const err = ((await r.json().catch(() => null)) || {}).error || {};
        throw new HttpError(r.status, err.code, err.message);
      }
      const name = (/filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '') || [])[1] || 'audit.csv';
      const url = URL.createObjectURL(await r.blob());
      const a = h('a', { attrs: { href: url, download: name } });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      notify(msg, '');
    } catch (e) {
      notify(msg, refusal(e), 'error');
    }
  }

  document.getElementById('audit-form').addEventListener('submit', (ev) => { ev.preventDefault(); show(false); });
  more.addEventListener('click', () => show(true));
  tid('a-csv').addEventListener('click', download);
  const week = new Date(Date.now() - 7 * 86400e3);
  tid('a-since').value = week.toISOString().slice(0, 10);
  show(false);
}
