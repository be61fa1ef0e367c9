// The call-taker's "New call" form (issue 13): an incident opened for someone who phoned or walked in,
// keyboard only, in seconds:
//   N            opens the form (anywhere on the console but in a text field); Esc closes it
//   1-5          the category (the key is shown beside each), then the caller's name
//   Enter        in the name and phone moves on; in the address it picks the highlighted place
//                (arrow keys move through the gazetteer's answers as one types) or keeps the words
//                as an address; in the note it sends (Ctrl+Enter sends from anywhere)
// The answer's possible duplicates are listed with a key each (1-9): that key attaches this call to
// that incident (incident.link); Enter or Esc keeps it as a new incident.
import { t, onLangChange } from './i18n.js';
import { h, notify, errorText } from './ui.js';

const CATEGORIES = ['medical', 'fire', 'police', 'dispute', 'other'];
const SEARCH_DELAY_MS = 120;

function isTyping(el) {
  return !!el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));
}

function newRequestId() {
  const a = new Uint8Array(12);
  crypto.getRandomValues(a);
  return `call-${Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * @param {object} o
 * @param {HTMLElement} o.root  the #newcall section
 * @param {HTMLButtonElement} o.opener  the "New call" button
 * @param {HTMLElement} o.app  the console: the opener shows while it does
 * @param {(type: string, fields: object) => Promise<object>} o.request  a WebSocket command
 * @param {(incident: object) => void} o.shown  an incident created or changed here, for the queue
 */
export function newCallForm({ root, opener, app, request, shown }) {
  const active = () => !app.hidden;
  const form = root.querySelector('form');
  const cats = root.querySelector('#nc-categories');
  const name = root.querySelector('#nc-name');
  const phone = root.querySelector('#nc-phone');
  const channel = root.querySelector('#nc-channel');
  const address = root.querySelector('#nc-address');
  const list = root.querySelector('#nc-places');
  const note = root.querySelector('#nc-note');
  const send = root.querySelector('[data-testid=newcall-send]');
  const msg = root.querySelector('#nc-msg');
  const result = root.querySelector('#nc-result');
  let category = null;
  let places = []; // the gazetteer's answer for the words in the address box
  let active_i = -1; // the highlighted answer
  let place = null; // the place picked
  let requestId = newRequestId();
  let created = null; // the incident this form opened, with its duplicates
  let searchTimer = null;
  let searchSeq = 0;

  function renderCategories() {
    cats.replaceChildren(...CATEGORIES.map((c, i) => {
      const id = `nc-cat-${c}`;
      const input = h('input', {
        testid: `newcall-category-${c}`,
        attrs: { type: 'radio', name: 'nc-category', id, value: c, checked: category === c },
        on: { change: () => { category = c; } },
      });
      return h('label', { class: 'nc-cat', attrs: { for: id } }, input,
        h('kbd', { text: String(i + 1) }), ' ', t(`category.${c}`));
    }));
  }

  function open() {
    if (!root.hidden) return focusFirst();
    reset();
    root.hidden = false;
    opener.setAttribute('aria-expanded', 'true');
    focusFirst();
  }

  function focusFirst() {
    const checked = cats.querySelector('input:checked') || cats.querySelector('input');
    checked.focus();
  }

  function close() {
    root.hidden = true;
    opener.setAttribute('aria-expanded', 'false');
    opener.focus();
  }

  function reset() {
    form.reset();
    category = null;
    place = null;
    created = null;
    requestId = newRequestId();
    channel.value = 'phone';
    closeList();
    renderCategories();
    result.replaceChildren();
    result.hidden = true;
    form.hidden = false;
    notify(msg, '');
  }

  // ---- the address box: a combobox over the gazetteer -------------------------------------
  function closeList() {
    places = [];
    active_i = -1;
    list.replaceChildren();
    list.hidden = true;
    address.setAttribute('aria-expanded', 'false');
    address.removeAttribute('aria-activedescendant');
  }

  function paintList() {
    list.replaceChildren(...places.map((p, i) => h('li', {
      class: 'nc-place', testid: 'newcall-place-option',
      attrs: { role: 'option', id: `nc-place-${i}`, 'aria-selected': i === active_i ? 'true' : 'false' },
      on: { mousedown: (ev) => { ev.preventDefault(); pick(i); } },
    }, h('span', { class: 'nc-place-name', text: p.name }), ' ', h('span', { class: 'muted', text: p.address }))));
    list.hidden = places.length === 0;
    address.setAttribute('aria-expanded', places.length ? 'true' : 'false');
    if (active_i >= 0) address.setAttribute('aria-activedescendant', `nc-place-${active_i}`);
    else address.removeAttribute('aria-activedescendant');
  }

  async function search(words) {
    const seq = ++searchSeq;
    try {
      const r = await request('places.search', { q: words, limit: 8 });
      if (seq !== searchSeq || address.value.trim() !== words) return; // typed on meanwhile
      places = r.places || [];
      active_i = places.length ? 0 : -1;
      paintList();
    } catch {
      if (seq === searchSeq) closeList(); // the words still go as an address
    }
  }

  function pick(i) {
    place = places[i];
    address.value = place.name;
    closeList();
    note.focus();
  }

  address.addEventListener('input', () => {
    place = null;
    clearTimeout(searchTimer);
    const words = address.value.trim();
    if (!words) return closeList();
    searchTimer = setTimeout(() => search(words), SEARCH_DELAY_MS);
  });

  address.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      if (!places.length) return;
      ev.preventDefault();
      const step = ev.key === 'ArrowDown' ? 1 : -1;
      active_i = (active_i + step + places.length) % places.length;
      paintList();
    } else if (ev.key === 'Enter' && !ev.ctrlKey) {
      ev.preventDefault();
      if (active_i >= 0 && places.length) pick(active_i);
      else { closeList(); note.focus(); } // no pick: the words go as an address
    } else if (ev.key === 'Escape' && !list.hidden) {
      ev.preventDefault();
      ev.stopPropagation();
      closeList();
    }
  });

  // ---- keys ----------------------------------------------------------------------------------
  cats.addEventListener('keydown', (ev) => {
    const n = Number(ev.key);
    if (Number.isInteger(n) && n >= 1 && n <= CATEGORIES.length) {
      ev.preventDefault();
      category = CATEGORIES[n - 1];
      renderCategories();
      name.focus();
    }
  });
  for (const [from, to] of [[name, phone], [phone, address]]) {
    from.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.ctrlKey) {
        ev.preventDefault();
        to.focus();
      }
    });
  }
  root.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      close();
    } else if (ev.key === 'Enter' && ev.ctrlKey && !form.hidden) {
      ev.preventDefault();
      form.requestSubmit();
    } else if (created && !result.hidden && !isTyping(ev.target)) {
      const n = Number(ev.key);
      if (Number.isInteger(n) && n >= 1 && n <= created.duplicates.length) {
        ev.preventDefault();
        attach(created.duplicates[n - 1]);
      }
    }
  });
  document.addEventListener('keydown', (ev) => {
    if ((ev.key === 'n' || ev.key === 'N') && !ev.ctrlKey && !ev.metaKey && !ev.altKey && active()
        && root.hidden && !isTyping(document.activeElement)) {
      ev.preventDefault();
      open();
    }
  });
  opener.addEventListener('click', open);
  const sync = () => {
    opener.hidden = !active();
    if (!active() && !root.hidden) close();
  };
  new MutationObserver(sync).observe(app, { attributes: true, attributeFilter: ['hidden'] });
  sync();
  root.querySelector('#nc-cancel').addEventListener('click', close);

  // ---- sending ---------------------------------------------------------------------------------
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!category) {
      notify(msg, t('newcall.needCategory'), 'error');
      focusFirst();
      return;
    }
    const words = address.value.trim();
    if (!place && !words) {
      notify(msg, t('newcall.needWhere'), 'error');
      address.focus();
      return;
    }
    const fields = {
      request_id: requestId, category, channel: channel.value, note: note.value.trim(),
      caller: { name: name.value.trim() || null, phone: phone.value.trim() || null },
    };
    if (place) fields.place_id = place.id;
    else fields.address = words;
    send.disabled = true;
    notify(msg, t('newcall.sending'));
    try {
      created = await request('incident.create', fields);
      shown(created.incident);
      notify(msg, '');
      showResult();
    } catch (e) {
      const why = e && e.code === 'bad_request' && e.message ? ` ${e.message}` : '';
      notify(msg, `${t('newcall.failed')} ${errorText(e)}${why}`, 'error');
    } finally {
      send.disabled = false;
    }
  });

  function showResult() {
    const inc = created.incident;
    form.hidden = true;
    const head = h('p', { class: 'nc-created', testid: 'newcall-created', data: { incidentId: inc.id } },
      t('newcall.created', { ref: inc.ref_no, status: t(`status.${inc.status}`) }));
    const dups = created.duplicates || [];
    const items = dups.map((d, i) => h('li', { class: 'nc-dup', testid: 'newcall-duplicate', data: { incidentId: d.id } },
      h('button', {
        class: 'btn btn-secondary btn-small', testid: 'newcall-attach', attrs: { type: 'button' },
        on: { click: () => attach(d) },
      }, h('kbd', { text: String(i + 1) }), ' ', t('newcall.attach')),
      ' ', h('span', { class: 'ref', text: d.ref_no }), ' ',
      `${t(`category.${d.category}`)} · ${t(`status.${d.status}`)} · `,
      (d.duplicate_reasons || []).map((r) => t(`newcall.why.${r}`)).join(', '),
      d.distance_m !== null && d.distance_m !== undefined ? ` · ${t('newcall.metres', { m: d.distance_m })}` : ''));
    const done = h('button', {
      class: 'btn btn-primary', testid: 'newcall-done', attrs: { type: 'button' },
      on: { click: close },
    }, dups.length ? t('newcall.keepNew') : t('newcall.done'));
    result.replaceChildren(head,
      dups.length ? h('p', { text: t('newcall.maybeSame', { n: dups.length }) }) : null,
      dups.length ? h('ol', { class: 'nc-dups', attrs: { 'aria-label': t('newcall.dupsLabel') } }, items) : null,
      done);
    result.hidden = false;
    done.focus();
  }

  async function attach(dup) {
    const inc = created.incident;
    try {
      const r = await request('incident.link', { incident_id: inc.id, duplicate_of: dup.id });
      shown(r.incident);
      result.replaceChildren(h('p', { class: 'nc-created', testid: 'newcall-linked', data: { incidentId: dup.id } },
        t('newcall.linked', { ref: inc.ref_no, main: dup.ref_no })),
      h('button', { class: 'btn btn-primary', testid: 'newcall-done', attrs: { type: 'button' }, on: { click: close } },
        t('newcall.done')));
      created = null;
      result.querySelector('[data-testid=newcall-done]').focus();
    } catch (e) {
      notify(msg, `${t('newcall.failed')} ${errorText(e)}`, 'error');
    }
  }

  onLangChange(() => {
    renderCategories();
    if (created && !result.hidden) showResult();
  });
  renderCategories();
  return { open, close };
}
