// The counter's form (issue 13) without a page: which row a refusal is about, and who may add to a case.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { visitError, isOpenerOf } from '../static/js/mediate-state.js';

const bad = (message) => ({ code: 'bad_request', message });

test('a refused phone or name points at its row, with words for what is wrong', () => {
  assert.deepEqual(visitError(bad("parties[1].phone: '12345' is not a valid phone number; check the number")),
    { index: 1, field: 'phone', key: 'visit.phoneBad' });
  assert.deepEqual(visitError(bad('parties[0].phone: not a phone number; check the number or leave it out')),
    { index: 0, field: 'phone', key: 'visit.phoneBad' });
  assert.deepEqual(visitError(bad('parties[2].phone: the same number as parties[0]; each number can stand for one party only')),
    { index: 2, field: 'phone', key: 'visit.phoneTwice' });
  assert.deepEqual(visitError(bad('parties[1].phone: only numbers in CN can be invited by text; leave the phone out')),
    { index: 1, field: 'phone', key: 'visit.phoneAbroad' });
  assert.deepEqual(visitError(bad('parties[0].name: a name, not a phone number')),
    { index: 0, field: 'name', key: 'visit.nameBad' });
});

test('other refusals are not about a row', () => {
  assert.equal(visitError(bad('category must be one of neighbour, family')), null);
  assert.equal(visitError({ code: 'forbidden', message: 'parties[0].phone: x' }), null);
  assert.equal(visitError({ code: 'disconnected' }), null);
  assert.equal(visitError(null), null);
});

test('the opener adds to a case until a mediator takes it; nobody else does as opener', () => {
  const clerk = { id: 'k', role: 'clerk' };
  const open = { opened_by: { id: 'k', name: 'Qian', role: 'clerk' }, mediator: null };
  assert.equal(isOpenerOf(open, clerk), true);
  assert.equal(isOpenerOf({ ...open, mediator: { id: 'm', name: 'Sun' } }, clerk), false);
  assert.equal(isOpenerOf(open, { id: 'other', role: 'clerk' }), false);
  assert.equal(isOpenerOf({ opened_by: null, mediator: null }, clerk), false);
});
