// The status facts the pages share (web/static/js/status.js): node --test web/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FINAL, WORKING, PROGRESS, LOCATABLE, queueOrder, CASE_FINAL, CASE_TALKING } from '../static/js/status.js';

test('an incident is over when resolved or cancelled; a responder works it from assigned to on_scene', () => {
  assert.deepEqual([...FINAL], ['resolved', 'cancelled']);
  assert.deepEqual([...WORKING], ['assigned', 'en_route', 'on_scene']);
  assert.deepEqual(PROGRESS, ['assigned', 'en_route', 'on_scene', 'resolved']);
  assert.deepEqual([...LOCATABLE], ['queued', 'escalated']);
  for (const s of WORKING) assert.ok(PROGRESS.includes(s) && !FINAL.has(s), s);
  assert.ok(FINAL.has(PROGRESS[PROGRESS.length - 1]));
});

test('the queue: escalated first, then the most urgent priority, then the oldest', () => {
  const inc = (id, status, priority, created) => ({ id, status, priority, created_at: `2026-11-29T${created}:00Z` });
  const list = [
    inc('p2-old', 'queued', 2, '08:00'),
    inc('p1-new', 'offered', 1, '09:30'),
    inc('esc-p3', 'escalated', 3, '09:00'),
    inc('p1-old', 'queued', 1, '09:00'),
    inc('esc-p1', 'escalated', 1, '09:45'),
  ];
  assert.deepEqual(list.sort(queueOrder).map((i) => i.id), ['esc-p1', 'esc-p3', 'p1-old', 'p1-new', 'p2-old']);
});

test('a case is closed when settled, failed, referred or withdrawn; the parties talk in between', () => {
  assert.deepEqual([...CASE_FINAL], ['settled', 'failed', 'referred', 'withdrawn']);
  assert.deepEqual([...CASE_TALKING], ['in_mediation', 'agreement_proposed']);
  for (const s of CASE_TALKING) assert.ok(!CASE_FINAL.has(s));
});
