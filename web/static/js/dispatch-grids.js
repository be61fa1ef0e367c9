// The dispatch console's areas (issue 14): the grids from GET /api/grids drawn on the map and
// coloured by their open incidents (with a legend), a district › street › community › grid tree,
// and the area the queue is limited to — picked on the map or in the tree, "All areas" to reset.
// The pick is the caller's (onPick(code|null) sends queue.watch with `grids`). No grids (none
// imported, or a server without them): no borders, no tree, no legend; the console works as before.
import { t } from './i18n.js';
import { getJSON } from './api.js';
import { h } from './ui.js';
import { SCALE, stepLabel, buildTree, gridOf, refetchDelay } from './grid-state.js';

export const REFETCH_MS = 4000; // the colouring follows the incidents, fetched at most this often
// and this often anyway: with an area chosen, the changes elsewhere may not reach this console
export const POLL_MS = 20000;

export function gridAreas({ map, token, onPick, els }) {
  let features = [];
  let byCode = new Map(); // code -> gridOf(feature)
  let chosen = null; // the area's code, or null for all areas
  let lastAt = null;
  let timer = null;
  let inFlight = false;

  async function load() {
    timer = null;
    if (inFlight) return;
    inFlight = true;
    lastAt = Date.now();
    try {
      const fc = await getJSON('/api/grids', token());
      features = (fc && Array.isArray(fc.features)) ? fc.features : [];
    } catch {
      features = []; // no grids here: the console without areas
    } finally {
      inFlight = false;
    }
    byCode = new Map(features.map((f) => [gridOf(f).code, gridOf(f)]));
    map.setGrids(features, (code) => pick(code));
    if (chosen && !byCode.has(chosen)) chosen = null;
    paint();
  }

  /** Incidents changed: fetch the colouring again, at most every REFETCH_MS. */
  function changed() {
    if (timer !== null) return;
    timer = setTimeout(load, refetchDelay(lastAt, Date.now(), REFETCH_MS));
  }

  function pick(code) {
    chosen = code || null;
    reveal = true;
    map.chooseGrid(chosen);
    paint();
    onPick(chosen);
  }

  let treeCodes = null; // the grids the tree was built for: rebuilt only when they change
  let reveal = false; // a pick was made: open the tree's branches down to it (once)

  function paint() {
    const any = features.length > 0;
    els.treeBox.hidden = !any;
    els.legend.hidden = !any;
    paintBar();
    const codes = features.map((f) => gridOf(f).code).join(',');
    if (codes !== treeCodes) {
      // a new set of grids: build the tree (keeping which branches are open); otherwise only its words
      // change below, so the focus and the open branches stay where the dispatcher left them
      treeCodes = codes;
      const open = new Set([...els.tree.querySelectorAll('details[open]')].map((d) => d.dataset.code));
      els.tree.replaceChildren(...(any ? [branch(buildTree(features), open)] : []));
    }
    for (const b of els.tree.querySelectorAll('[data-testid=grid-pick]')) {
      const g = byCode.get(b.dataset.code);
      if (!g) continue;
      b.textContent = t('dispatch.gridPick', { name: g.name, n: g.open });
      b.setAttribute('aria-pressed', g.code === chosen ? 'true' : 'false');
      b.classList.toggle('chosen', g.code === chosen);
    }
    for (const d of els.tree.querySelectorAll('details')) {
      const g = byCode.get(d.dataset.code);
      if (g) d.querySelector(':scope > summary').textContent = `${g.name} · ${t(`gridlevel.${g.level}`)}`;
      if (reveal && chosen && ((byCode.get(chosen) || {}).path || []).includes(d.dataset.code)) d.open = true;
    }
    reveal = false;
    if (!any) return;
    els.legend.replaceChildren(
      h('span', { class: 'key legend-title', text: t('dispatch.gridLegend') }),
      ...SCALE.map((s) => h('span', { class: 'key' }, swatch(s.colour), h('span', { text: stepLabel(s) }))));
  }

  function swatch(colour) {
    const el = h('span', { class: 'swatch', attrs: { 'aria-hidden': 'true' } });
    el.style.backgroundColor = colour; // through the CSSOM: the pages' CSP refuses style attributes
    return el;
  }

  function branch(nodes, open) {
    return h('ul', { class: 'grid-tree-list' }, nodes.map((n) => {
      const button = h('button', {
        class: 'link grid-pick',
        testid: 'grid-pick',
        data: { code: n.code, level: n.level },
        attrs: { type: 'button', 'aria-pressed': 'false' },
        on: { click: () => pick(n.code) },
      });
      if (!n.children.length) return h('li', {}, button);
      const details = h('details', { data: { code: n.code }, attrs: { open: open.has(n.code) } },
        h('summary', {}),
        button,
        branch(n.children, open));
      return h('li', {}, details);
    }));
  }

  function paintBar() {
    const g = chosen ? byCode.get(chosen) : null;
    els.current.dataset.code = chosen || '';
    els.current.textContent = g ? `${g.name} · ${t(`gridlevel.${g.level}`)}` : t('dispatch.areaEverywhere');
    els.all.hidden = !chosen;
  }

  setInterval(() => {
    if (lastAt !== null && !document.hidden) changed();
  }, POLL_MS);

  els.all.addEventListener('click', () => {
    pick(null);
    els.current.focus();
  });

  return {
    load,
    changed,
    chosen: () => chosen,
    /** Repaint in the page's language. */
    relabel: () => paint(),
  };
}
