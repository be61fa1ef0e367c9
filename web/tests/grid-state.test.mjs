// The dispatch map's grids (web/static/js/grid-state.js): node --test web/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { SCALE, step, stepLabel, buildTree, inArea, refetchDelay, gridOf } from '../static/js/grid-state.js';

const f = (code, name, level, parent, open = 0) => ({ type: 'Feature', properties: { code, name, level, parent, open }, geometry: null });

test('open counts map onto the scale from light to strong; the legend says each step', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 6, 7, 250].map(step), [0, 1, 2, 2, 3, 3, 4, 4]);
  assert.equal(step(undefined), 0);
  assert.equal(step(-3), 0);
  assert.deepEqual(SCALE.map(stepLabel), ['0', '1', '2–3', '4–6', '7+']);
});

test('the tree: district › street › community › grid, by name, orphans as roots', () => {
  const tree = buildTree([
    f('G2', 'Pine 1', 'grid', 'C2', 3), f('D1', 'Riverside', 'district', null), f('C2', 'Pine', 'community', 'S1'),
    f('S1', 'East', 'street', 'D1'), f('C1', 'Lotus', 'community', 'S1'), f('G1', 'Lotus 1', 'grid', 'C1'),
    f('X9', 'Lost', 'grid', 'NOPE'),
  ]);
  const shape = (nodes) => nodes.map((n) => [n.code, shape(n.children)]);
  assert.deepEqual(shape(tree), [
    ['X9', []],
    ['D1', [['S1', [['C1', [['G1', []]]], ['C2', [['G2', []]]]]]]],
  ]);
  assert.equal(tree[1].children[0].children[1].children[0].open, 3);
  assert.deepEqual(gridOf({ properties: { code: 'A' } }), { code: 'A', name: 'A', level: 'grid', parent: null, path: ['A'], open: 0 });
});

test('an area holds the incidents whose grid path has its code', () => {
  const inc = { grid: { code: 'G1', path: ['D1', 'S1', 'C1', 'G1'] } };
  assert.equal(inArea(inc, null), true);
  assert.equal(inArea(inc, 'C1'), true);
  assert.equal(inArea(inc, 'G1'), true);
  assert.equal(inArea(inc, 'C2'), false);
  assert.equal(inArea({ grid: null }, 'C1'), false); // outside every grid
  assert.equal(inArea({ grid: null }, null), true);
  assert.equal(inArea({}, 'C1'), true); // a server that does not tag incidents: the server's filter stands
});

test('the colouring is fetched again at most every gap', () => {
  assert.equal(refetchDelay(null, 1000, 5000), 0);
  assert.equal(refetchDelay(1000, 3000, 5000), 3000);
  assert.equal(refetchDelay(1000, 9000, 5000), 0);
});
