// The dispatcher's console: the live queue, responders on duty, the map, an incident's
// timeline, and the manual assign for escalated incidents.
import { t, getLang, onLangChange } from './i18n.js';
import { getJSON } from './api.js';
import { h, tid, notify, errorText, fmtAge, fmtTime, distanceKm, fmtKm } from './ui.js';
import { staffSession } from './staff.js';
import { DispatchMap } from './dispatch-map.js';
import { eventLine } from './timeline.js';
import { FINAL, LOCATABLE, queueOrder } from './status.js';
import { Versions, candidates as nearest, parseCoord } from './dispatch-state.js';
import { closeControl } from './dispatch-close.js';
import { pushAlerts } from './push.js';
import { consoleAlarm, takenBadge } from './alarm.js';
import { rings } from './alarm-state.js';
import { escalationReason, handedBack } from './job-facts.js';
import { newCallForm } from './newcall.js';
import { referControl } from './dispatch-refer.js';
import { gridAreas } from './dispatch-grids.js';
import { inArea } from './grid-state.js';

const ROUGH_M = 1000; // a position this uncertain is worth fixing by hand

const els = {
  app: document.getElementById('app'),
  queueBody: document.getElementById('queue-body'),
  queueEmpty: document.getElementById('queue-empty'),
  queueCount: document.getElementById('queue-count'),
  respBody: document.getElementById('responders-body'),
  respEmpty: document.getElementById('responders-empty'),
  respCount: document.getElementById('responders-count'),
  msg: document.getElementById('msg'),
  detail: document.getElementById('detail'),
  detailEmpty: document.getElementById('detail-empty'),
  timeline: document.getElementById('timeline'),
  closeForm: document.getElementById('close-form'),
  locateForm: document.getElementById('locate-form'),
  locateLat: document.getElementById('locate-lat'),
  locateLon: document.getElementById('locate-lon'),
  locatePick: document.getElementById('locate-pick'),
  locateMsg: document.getElementById('locate-msg'),
  disposition: document.getElementById('disposition'),
};

const incidents = new Map(); // id -> incident (open ones)
const responders = new Map(); // id -> responder (on duty)
const rows = new Map(); // incident id -> <tr>
let selected = null; // incident id
let selectedIncident = null; // kept even after it leaves the queue
let events = [];

const map = new DispatchMap(document.getElementById('map'), { onSelect: select });
// the areas (issue 14): grid borders coloured by open incidents; a pick limits the queue to one area
const areas = gridAreas({
  map,
  token: () => token(),
  onPick: () => watch(),
  els: {
    tree: document.getElementById('grid-tree'),
    treeBox: document.getElementById('grid-tree-box'),
    legend: document.getElementById('grid-legend'),
    current: document.getElementById('area-current'),
    all: document.getElementById('area-all'),
  },
});
let gridsLoaded = false;
const alerts = pushAlerts({ container: els.app, token: () => token() }); // escalations with the screen off

const { sock, token, account } = staffSession({
  page: 'dispatch',
  roles: ['dispatcher', 'admin'],
  onWelcome: (w) => {
    alerts.refresh();
    return watch(w);
  },
  onLogout: () => {
    alerts.signedOut();
    incidents.clear();
    responders.clear();
    map.clear();
    select(null);
    renderAll();
    alarm.reset();
  },
});

// the alarm rings for escalated and new priority-1 incidents until someone says "I'm on it" (alarm.js)
const alarm = consoleAlarm({
  root: document.getElementById('alarm'),
  me: () => (account() || {}).id || null,
  ack: async (id) => (await sock.request('incident.ack', { incident_id: id })).incident,
  acked: (inc) => upsertIncident(inc),
  select: (id) => select(id),
  selected: () => selected,
});

// Pushes that arrive while queue.watch is in flight are kept and replayed over the snapshot;
// every object is versioned by updated_at, so an older copy never overwrites a newer one.
let buffered = null; // [['incident'|'responder', obj]] while a watch is in flight
const versions = new Versions(); // the newest copy seen of each, closed ones included

async function watch() {
  await map.init();
  map.resize();
  if (!gridsLoaded) {
    gridsLoaded = true;
    areas.load();
  } else {
    areas.changed();
  }
  buffered = [];
  const area = areas.chosen();
  try {
    const r = await sock.request('queue.watch', area ? { grids: [area] } : {});
    if (area !== areas.chosen()) return; // another pick went out meanwhile: its answer rules
    const late = buffered;
    buffered = null;
    incidents.clear();
    responders.clear();
    versions.clear();
    map.clear();
    for (const inc of r.incidents || []) upsertIncident(inc, false);
    for (const resp of r.responders || []) upsertResponder(resp, false);
    for (const [kind, obj] of late) (kind === 'incident' ? upsertIncident : upsertResponder)(obj, false);
    renderAll();
    if (selected) loadTimeline(selected);
    notify(els.msg, '');
  } catch (e) {
    buffered = null;
    notify(els.msg, `${t('dispatch.watchFailed')} ${errorText(e)}`, 'error');
  }
}

// ---- state ----------------------------------------------------------------------------

function upsertIncident(inc, render = true) {
  if (!versions.admit(inc)) return;
  const off = FINAL.has(inc.status) || !inArea(inc, areas.chosen()); // closed, or outside the area shown
  if (off) incidents.delete(inc.id);
  else incidents.set(inc.id, inc);
  if (inc.id === selected) {
    selectedIncident = inc;
    paintDetail();
    loadTimeline(inc.id);
  }
  if (off) map.removeIncident(inc.id);
  else map.setIncident(inc);
  if (render) renderQueue();
}

function upsertResponder(resp, render = true) {
  if (!versions.admit(resp)) return;
  if (resp.status === 'off_duty') {
    responders.delete(resp.id);
    map.removeResponder(resp.id);
  } else {
    responders.set(resp.id, resp);
    map.setResponder(resp);
  }
  if (render) {
    renderResponders();
    renderQueue(); // the assign choices depend on who is available
  }
}

sock.on('incident.updated', (m) => {
  areas.changed(); // the colouring of the grids follows
  if (buffered) buffered.push(['incident', m.incident]);
  else upsertIncident(m.incident);
});
sock.on('responder.updated', (m) => {
  if (buffered) buffered.push(['responder', m.responder]);
  else upsertResponder(m.responder);
});
sock.onState((s) => els.app.classList.toggle('stale', s !== 'live'));

// ---- the queue ------------------------------------------------------------------------

function renderQueue() {
  const list = [...incidents.values()].sort(queueOrder);
  for (const [id, tr] of rows) {
    if (!incidents.has(id)) {
      tr.remove();
      rows.delete(id);
    }
  }
  for (const inc of list) {
    const old = rows.get(inc.id);
    const tr = buildRow(inc, old);
    rows.set(inc.id, tr);
    els.queueBody.append(tr); // append moves existing rows into sorted order
  }
  const escalated = list.filter((i) => i.status === 'escalated').length;
  alarm.update(list);
  els.queueEmpty.hidden = list.length > 0;
  els.queueCount.textContent = list.length ? `(${list.length})` : '';
  document.title = `${escalated ? `(${escalated}) ` : ''}${t('dispatch.title')}`;
}

function buildRow(inc, old) {
  // rebuild only what changed, so an open assign list is not yanked from under the dispatcher
  const escalated = inc.status === 'escalated';
  const sig = JSON.stringify([inc, escalated ? candidates(inc).map((c) => [c.r.id, c.r.name, Math.round(c.km * 10)]) : 0, getLang(), inc.id === selected]);
  if (old && old.dataset.sig === sig) return old;
  const chosen = old && old.querySelector('select') ? old.querySelector('select').value : null;
  const tr = h('tr', {
    testid: 'incident-row',
    class: `row status-${inc.status}${inc.id === selected ? ' selected' : ''}${rings(inc) ? ' ringing' : ''}`,
    data: { incidentId: inc.id, status: inc.status },
    on: { click: (ev) => { if (!ev.target.closest('select, button')) select(inc.id); } },
  },
  h('td', { class: `prio prio-${inc.priority}`, text: t('dispatch.priority', { n: inc.priority }) }),
  h('td', { class: 'age', data: { since: inc.created_at }, text: age(inc.created_at) }),
  h('td', {}, h('span', { class: `badge badge-${inc.status}`, text: t(`status.${inc.status}`) }), (inc.flags || []).includes('possible_flood') ? h('span', { class: 'badge badge-flood', testid: 'flood-flag', text: t('dispatch.possibleFlood') }) : null, takenBadge(inc), whyWaiting(inc)),
  h('td', { text: t(`category.${inc.category}`) }),
  h('td', {}, h('button', {
    class: 'link ref', attrs: { type: 'button', 'aria-label': t('dispatch.showTimeline', { ref: inc.ref_no }) },
    text: inc.ref_no, on: { click: () => select(inc.id) },
  })),
  h('td', { text: inc.responder ? inc.responder.name : '—' }),
  h('td', { class: 'action' }, escalated ? assignControl(inc, chosen) : null));
  tr.dataset.sig = sig;
  if (old) old.replaceWith(tr);
  return tr;
}

/** Why it waits for a dispatcher (escalated), or that a responder gave it back: said truly, never guessed. */
function whyWaiting(inc) {
  const reason = escalationReason(inc);
  if (reason) return h('span', { class: 'escalation-reason', testid: 'escalation-reason', data: { reason }, text: t(`escalation.${reason}`) });
  if (handedBack(inc)) return h('span', { class: 'badge badge-handed-back', testid: 'handed-back', text: t('dispatch.handedBack') });
  return null;
}

function candidates(inc) {
  return nearest(inc, responders.values(), distanceKm);
}

function assignControl(inc, chosen) {
  const list = candidates(inc);
  const select = h('select', { testid: 'assign-responder', attrs: { 'aria-label': t('dispatch.assignTo') } });
  if (!list.length) select.append(h('option', { attrs: { value: '' }, text: t('dispatch.noneAvailable') }));
  for (const { r, km } of list) {
    const skills = (r.skills || []).map((s) => t(`skill.${s}`)).join(t('punct.list'));
    select.append(h('option', { attrs: { value: r.id }, text: `${r.name} · ${fmtKm(km)}${skills ? ` · ${skills}` : ''}` }));
  }
  if (chosen && list.some((c) => c.r.id === chosen)) select.value = chosen;
  const btn = h('button', {
    testid: 'assign', class: 'btn btn-danger btn-small', attrs: { type: 'button', disabled: !list.length },
    text: t('dispatch.assign'),
    on: { click: () => assign(inc.id, select.value, btn) },
  });
  return h('div', { class: 'assign' }, select, btn);
}

async function assign(incidentId, responderId, btn) {
  if (!responderId) return;
  btn.disabled = true;
  notify(els.msg, '');
  try {
    const r = await sock.request('incident.assign', { incident_id: incidentId, responder_id: responderId });
    upsertIncident(r.incident);
  } catch (e) {
    btn.disabled = false;
    notify(els.msg, `${t('dispatch.assignFailed')} ${errorText(e)}`, 'error');
  }
}

function age(iso) {
  return fmtAge(sock.now() - Date.parse(iso));
}

setInterval(() => {
  for (const td of els.queueBody.querySelectorAll('td.age')) td.textContent = age(td.dataset.since);
  for (const td of els.respBody.querySelectorAll('td.age')) td.textContent = age(td.dataset.since);
}, 1000);

// ---- responders -----------------------------------------------------------------------

function renderResponders() {
  els.respBody.replaceChildren(
    ...[...responders.values()]
      .sort((a, b) => a.status.localeCompare(b.status) || a.name.localeCompare(b.name))
      .map((r) => h('tr', { testid: 'responder-row', data: { responderId: r.id, status: r.status } },
        h('td', { text: r.name }),
        h('td', { text: (r.skills || []).map((s) => t(`skill.${s}`)).join(t('punct.list')) }),
        h('td', {}, h('span', { class: `badge badge-${r.status}`, text: t(`rstate.${r.status}`) })),
        h('td', { class: 'age', data: { since: r.updated_at }, text: age(r.updated_at) }))),
  );
  els.respEmpty.hidden = responders.size > 0;
  els.respCount.textContent = responders.size ? `(${responders.size})` : '';
}

function renderAll() {
  els.queueBody.replaceChildren();
  rows.clear();
  renderQueue();
  renderResponders();
}

// ---- detail and timeline ----------------------------------------------------------------

function select(id) {
  selected = id;
  selectedIncident = id ? incidents.get(id) || selectedIncident : null;
  events = [];
  for (const [rid, tr] of rows) tr.classList.toggle('selected', rid === id);
  alarm.repaint(); // "I'm on it" takes the selected incident when it rings
  paintDetail();
  map.select(id);
  if (id) {
    map.focus(selectedIncident);
    loadTimeline(id);
  }
}

async function loadTimeline(id) {
  let list;
  try {
    list = (await sock.request('incident.events', { incident_id: id }, { waitMs: 0 })).events;
  } catch {
    try {
      const r = await getJSON(`/api/incidents/${encodeURIComponent(id)}`, token());
      if (r.incident && id === selected) selectedIncident = r.incident;
      list = r.events;
    } catch (e) {
      if (id === selected) notify(els.msg, `${t('dispatch.timelineFailed')} ${errorText(e)}`, 'error');
      return;
    }
  }
  if (id !== selected) return;
  events = list || [];
  paintDetail();
}

/** A responder's name from what the console knows (the event log holds only ids). */
function nameOf(id) {
  if (responders.has(id)) return responders.get(id).name;
  for (const inc of [selectedIncident, ...incidents.values()]) {
    if (inc && inc.responder && inc.responder.id === id) return inc.responder.name;
  }
  return null;
}

function paintDetail() {
  const inc = selectedIncident;
  els.detail.hidden = !inc;
  els.detailEmpty.hidden = !!inc;
  if (!inc) return;
  document.getElementById('d-ref').textContent = inc.ref_no;
  document.getElementById('d-status').textContent = t(`status.${inc.status}`);
  document.getElementById('d-category').textContent = t(`category.${inc.category}`);
  // a call-taker's incident: the caller, and who took the call (issue 13)
  const who = inc.opened_by ? inc.caller_name : inc.reporter && inc.reporter.name;
  document.getElementById('d-reporter').textContent = (who || t('common.anonymous'))
    + (inc.opened_by ? ` · ${t('dispatch.openedBy', { name: inc.opened_by.name || '—' })}` : '');
  document.getElementById('d-channel').textContent = t(`channel.${inc.channel}`);
  document.getElementById('d-location').textContent = inc.lat === null || inc.lat === undefined
    ? (inc.address ? `${inc.address}${t('punct.open')}${t('dispatch.noLocation')}${t('punct.close')}` : t('dispatch.noLocation'))
    : `${inc.lat.toFixed(5)}, ${inc.lon.toFixed(5)}${inc.accuracy_m ? `${t('punct.open')}±${fmtKm(inc.accuracy_m / 1000)}${inc.accuracy_m > ROUGH_M ? `${t('punct.list')}${t('dispatch.rough')}` : ''}${t('punct.close')}` : ''}`;
  paintLocate(inc);
  document.getElementById('d-note').textContent = inc.note || '—'; // resident text: as text
  // issue 15: a dispute referred into mediation names its case
  document.getElementById('d-case-label').hidden = document.getElementById('d-case').hidden = !inc.case_ref;
  document.getElementById('d-case').textContent = inc.case_ref ? t('dispatch.referredCase', { ref: inc.case_ref }) : '';
  els.timeline.replaceChildren(...events.map((ev) => h('li', {},
    h('time', { attrs: { datetime: ev.at }, text: fmtTime(ev.at) }), ' ',
    h('span', { text: eventLine(ev, nameOf) }))));
  els.closeForm.hidden = FINAL.has(inc.status);
  closer.paint(inc);
  referrer.paint(inc);
}

// ---- setting the position of an incident (incident.locate) ------------------------------

let locateFor = null; // the incident the locate fields were filled for

function paintLocate(inc) {
  const show = !!inc && LOCATABLE.has(inc.status);
  els.locateForm.hidden = !show;
  if (!show) {
    if (locateFor) stopPicking();
    locateFor = null;
    map.showPick(null);
    return;
  }
  if (locateFor !== inc.id) {
    // a new selection: start from what is known, without clobbering typing on later updates
    locateFor = inc.id;
    stopPicking();
    map.showPick(null);
    notify(els.locateMsg, '');
    const known = inc.lat !== null && inc.lat !== undefined;
    els.locateLat.value = known ? inc.lat.toFixed(6) : '';
    els.locateLon.value = known ? inc.lon.toFixed(6) : '';
  }
}

function stopPicking() {
  map.pickMode(false);
  els.locatePick.setAttribute('aria-pressed', 'false');
  els.locatePick.textContent = t('dispatch.locatePick');
}

els.locatePick.addEventListener('click', () => {
  if (els.locatePick.getAttribute('aria-pressed') === 'true') {
    stopPicking();
    return;
  }
  els.locatePick.setAttribute('aria-pressed', 'true');
  els.locatePick.textContent = t('dispatch.locatePicking');
  map.pickMode(true, (p) => {
    stopPicking();
    els.locateLat.value = p.lat.toFixed(6);
    els.locateLon.value = p.lon.toFixed(6);
    map.showPick(p, t('dispatch.pickLabel'));
  });
});

els.locateForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!selected) return;
  const lat = parseCoord(els.locateLat.value, 90);
  const lon = parseCoord(els.locateLon.value, 180);
  if (lat === null || lon === null) {
    notify(els.locateMsg, t('dispatch.locateBad'), 'error');
    return;
  }
  const btn = tid('locate');
  btn.disabled = true;
  stopPicking();
  try {
    const r = await sock.request('incident.locate', { incident_id: selected, lat, lon });
    map.showPick(null);
    notify(els.locateMsg, t('dispatch.locateDone'), 'ok');
    upsertIncident(r.incident);
  } catch (e) {
    notify(els.locateMsg, `${t('dispatch.locateFailed')} ${errorText(e)}`, 'error');
  } finally {
    btn.disabled = false;
  }
});

const closer = closeControl({
  form: els.closeForm,
  selected: () => selectedIncident,
  close: (id, disposition) => sock.request('incident.close', { incident_id: id, disposition }),
  done: (inc) => upsertIncident(inc),
});

// a dispute referred into mediation (issue 15): the form is dispatch-refer.js
const referrer = referControl({
  form: document.getElementById('refer-form'),
  selected: () => selectedIncident,
  refer: (fields) => sock.request('incident.refer', fields),
  done: (inc) => upsertIncident(inc),
});

// a call-taker opens an incident for a caller (issue 13): the form is newcall.js
newCallForm({
  root: document.getElementById('newcall'),
  opener: document.getElementById('newcall-open'),
  app: els.app,
  request: (type, fields) => sock.request(type, fields),
  shown: (inc) => {
    upsertIncident(inc);
    if (!FINAL.has(inc.status)) select(inc.id);
  },
});

window.addEventListener('resize', () => map.resize());
document.getElementById('show-all').addEventListener('click', () => map.showAll());
onLangChange(() => {
  if (els.locatePick.getAttribute('aria-pressed') !== 'true') els.locatePick.textContent = t('dispatch.locatePick');
  else els.locatePick.textContent = t('dispatch.locatePicking');
  renderAll();
  paintDetail();
  map.translate();
  map.relabel(incidents.values(), responders.values());
  areas.relabel();
});
