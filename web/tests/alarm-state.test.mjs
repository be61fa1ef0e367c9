// The console alarm's rules (web/static/js/alarm-state.js), the same as dispatch/alarm.py: node --test web/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  MUTE_MS, alarmState, attention, fmtLeft, muteLeft, rings, ringing, takenBy, takenByMe, takenElsewhere, target,
} from '../static/js/alarm-state.js';

const inc = (id, status, priority, acks = [], created = '2026-11-30T09:00:00Z') =>
  ({ id, status, priority, acknowledged_by: acks, created_at: created });
const ack = (id, status, name = `Ops ${id}`) => ({ id, name, status, at: '2026-11-30T09:01:00Z' });

test('what asks for a dispatcher: escalated, and a new priority 1', () => {
  assert.equal(attention(inc('a', 'escalated', 3)), 'escalated');
  assert.equal(attention(inc('a', 'queued', 1)), 'new_urgent');
  assert.equal(attention(inc('a', 'offered', 1)), 'new_urgent');
  for (const s of ['queued', 'offered', 'assigned']) assert.equal(attention(inc('a', s, 2)), null);
  for (const s of ['assigned', 'en_route', 'on_scene', 'resolved', 'cancelled']) assert.equal(rings(inc('a', s, 1)), false);
  assert.equal(rings({ id: 'x', status: 'escalated', priority: 2 }), true); // no acknowledged_by field: none
});

test('an acknowledgement covers what it was made for', () => {
  assert.equal(rings(inc('a', 'offered', 1, [ack('d1', 'offered')])), false);
  assert.equal(rings(inc('a', 'escalated', 1, [ack('d1', 'offered')])), true); // taken while offered, escalated since
  assert.equal(rings(inc('a', 'escalated', 1, [ack('d1', 'escalated')])), false);
  assert.equal(rings(inc('a', 'queued', 1, [ack('d1', 'escalated')])), false);
});

test('the most urgent rings first; "I\'m on it" takes the selected one if it rings, else the first', () => {
  const list = ringing([
    inc('p1-new', 'offered', 1, [], '2026-11-30T09:00:00Z'),
    inc('esc-p3', 'escalated', 3, [], '2026-11-30T08:00:00Z'),
    inc('esc-p1-late', 'escalated', 1, [], '2026-11-30T09:05:00Z'),
    inc('esc-p1', 'escalated', 1, [], '2026-11-30T09:01:00Z'),
    inc('taken', 'escalated', 1, [ack('d1', 'escalated')]),
    inc('calm', 'assigned', 1),
  ]);
  assert.deepEqual(list.map((i) => i.id), ['esc-p1', 'esc-p1-late', 'esc-p3', 'p1-new']);
  assert.equal(target(list, 'p1-new').id, 'p1-new');
  assert.equal(target(list, 'calm').id, 'esc-p1');
  assert.equal(target(list, null).id, 'esc-p1');
  assert.equal(target([], 'x'), null);
});

test('who took it, and whether I did', () => {
  const i = inc('a', 'escalated', 1, [ack('d1', 'offered', 'Zhang'), ack('d2', 'escalated', 'Li')]);
  assert.deepEqual(takenBy(i), ['Zhang', 'Li']);
  assert.equal(takenByMe(i, 'd2'), true);
  assert.equal(takenByMe(i, 'd3'), false);
  assert.deepEqual(takenBy({ id: 'b' }), []);
});

test('the mute: five minutes at most, shown as m:ss; the state it gives', () => {
  const now = 1_000_000;
  assert.equal(muteLeft(now + 1000, now), 1000);
  assert.equal(muteLeft(now - 1, now), 0);
  assert.equal(muteLeft(null, now), 0);
  assert.equal(muteLeft('garbage', now), 0);
  assert.equal(muteLeft(now + MUTE_MS + 60_000, now), 0); // a tampered or clock-skewed value is not trusted
  assert.equal(fmtLeft(MUTE_MS), '5:00');
  assert.equal(fmtLeft(61_001), '1:02');
  assert.equal(fmtLeft(-5), '0:00');
  assert.equal(alarmState(0, now + 1000, now), 'quiet');
  assert.equal(alarmState(2, now + 1000, now), 'muted');
  assert.equal(alarmState(2, now - 1000, now), 'ringing');
});

test('taken elsewhere: what rang here and went quiet because someone else took it', () => {
  const byId = new Map([
    ['a', inc('a', 'escalated', 2, [ack('d2', 'escalated', 'Li')])],
    ['b', inc('b', 'escalated', 2, [ack('me', 'escalated', 'Me')])],
    ['c', inc('c', 'assigned', 1)], // assigned: quiet, nobody took it on the console
    ['d', inc('d', 'escalated', 2)],
  ]);
  const out = takenElsewhere(new Set(['a', 'b', 'c', 'd', 'gone']), [byId.get('d')], byId, 'me');
  assert.deepEqual(out.map((x) => [x.inc.id, x.names]), [['a', ['Li']]]);
});
