// The dispatcher console's bookkeeping (web/static/js/dispatch-state.js): node --test web/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Versions, candidates, parseCoord } from '../static/js/dispatch-state.js';

test('an older copy never overwrites a newer one; an equal one does; no updated_at always passes', () => {
  const v = new Versions();
  assert.equal(v.admit({ id: 'i1', updated_at: '2026-11-29T10:00:01Z' }), true);
  assert.equal(v.admit({ id: 'i1', updated_at: '2026-11-29T10:00:00Z' }), false);
  assert.equal(v.admit({ id: 'i1', updated_at: '2026-11-29T10:00:01Z' }), true);
  assert.equal(v.admit({ id: 'i2', updated_at: '2026-11-29T09:00:00Z' }), true); // per id
  assert.equal(v.admit({ id: 'i1' }), true);
  assert.equal(v.admit({ id: 'i1', updated_at: '2026-11-29T10:00:00Z' }), false); // the newest is still remembered
  v.clear(); // a new snapshot: start over
  assert.equal(v.admit({ id: 'i1', updated_at: '2026-11-29T10:00:00Z' }), true);
});

test('candidates: available responders only, nearest first, unknown positions last', () => {
  const flat = (lat1, lon1, lat2, lon2) => Math.hypot(lat2 - lat1, lon2 - lon1);
  const inc = { lat: 0, lon: 0 };
  const rs = [
    { id: 'far', status: 'available', lat: 3, lon: 4 },
    { id: 'busy', status: 'busy', lat: 0, lon: 0 },
    { id: 'nowhere', status: 'available', lat: null, lon: null },
    { id: 'near', status: 'available', lat: 0, lon: 1 },
    { id: 'offered', status: 'offered', lat: 0, lon: 0 },
  ];
  assert.deepEqual(candidates(inc, rs, flat).map((c) => [c.r.id, c.km]), [['near', 1], ['far', 5], ['nowhere', Infinity]]);
  assert.deepEqual(candidates({ lat: null, lon: null }, rs, flat).map((c) => c.km), [Infinity, Infinity, Infinity]);
  assert.deepEqual(candidates(inc, new Map(rs.map((r) => [r.id, r])).values(), flat).length, 3); // any iterable
});

test('a typed coordinate: trimmed, a decimal comma allowed, within its limit, else null', () => {
  assert.equal(parseCoord(' 31.2304 ', 90), 31.2304);
  assert.equal(parseCoord('121,4737', 180), 121.4737);
  assert.equal(parseCoord('-90', 90), -90);
  assert.equal(parseCoord('90.0001', 90), null);
  assert.equal(parseCoord('', 90), null);
  assert.equal(parseCoord('   ', 90), null);
  assert.equal(parseCoord('north', 90), null);
  assert.equal(parseCoord('Infinity', 180), null);
});
