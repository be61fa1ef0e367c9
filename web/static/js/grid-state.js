// The dispatch map's grids without a page (issue 14): the colour scale of open incidents, the
// district › street › community › grid tree, which incidents an area holds, and how often the
// colouring may be fetched again. No DOM, no Leaflet: tested by web/tests/grid-state.test.mjs.

export const LEVELS = ['district', 'street', 'community', 'grid'];

// open incidents in a grid (and below) → a fill from light to strong; the legend lists the same steps
export const SCALE = [
  { min: 0, max: 0, colour: '#f4f6f8' },
  { min: 1, max: 1, colour: '#fdd9b5' },
  { min: 2, max: 3, colour: '#f8a05e' },
  { min: 4, max: 6, colour: '#e0560f' },
  { min: 7, max: Infinity, colour: '#9c1c00' },
];

/** The step of the scale for this many open incidents (anything not a number counts as 0). */
export function step(open) {
  const n = Number.isFinite(Number(open)) ? Math.max(0, Math.floor(Number(open))) : 0;
  return SCALE.findIndex((s) => n >= s.min && n <= s.max);
}

/** The legend's label of a step: "0", "1", "2–3", "7+". */
export function stepLabel(s) {
  if (s.max === Infinity) return `${s.min}+`;
  return s.min === s.max ? `${s.min}` : `${s.min}–${s.max}`;
}

/** A feature's properties as the tree and the map use them. */
export function gridOf(feature) {
  const p = (feature && feature.properties) || {};
  return {
    code: String(p.code ?? ''),
    name: String(p.name ?? p.code ?? ''),
    level: LEVELS.includes(p.level) ? p.level : 'grid',
    parent: p.parent ?? null,
    path: Array.isArray(p.path) ? p.path.map(String) : [String(p.code ?? '')],
    open: Number(p.open) || 0,
  };
}

/**
 * The tree: [{code, name, level, open, children: [...]}], each level ordered by name then code.
 * A node whose parent is not in the collection is a root.
 */
export function buildTree(features) {
  const nodes = new Map();
  for (const f of features || []) {
    const g = gridOf(f);
    if (g.code) nodes.set(g.code, { ...g, children: [] });
  }
  const roots = [];
  for (const n of nodes.values()) {
    const parent = n.parent !== null ? nodes.get(n.parent) : undefined;
    if (parent && parent !== n) parent.children.push(n);
    else roots.push(n);
  }
  const order = (a, b) => a.name.localeCompare(b.name) || a.code.localeCompare(b.code);
  const sort = (list) => {
    list.sort(order);
    for (const n of list) sort(n.children);
    return list;
  };
  return sort(roots);
}

/**
 * Whether an incident belongs on a console showing this area (null: every area). An incident
 * without the `grid` field (a server before grids) is kept; one with `grid: null` lies outside
 * every grid, so in no area.
 */
export function inArea(inc, code) {
  if (!code || !inc || inc.grid === undefined) return true;
  return !!inc.grid && Array.isArray(inc.grid.path) && inc.grid.path.includes(code);
}

/** Milliseconds to wait before fetching again (0: now), fetches at least gapMs apart. */
export function refetchDelay(lastAt, now, gapMs) {
  if (lastAt === null || lastAt === undefined) return 0;
  return Math.max(0, lastAt + gapMs - now);
}
