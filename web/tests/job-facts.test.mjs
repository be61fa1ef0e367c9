// The facts a page shows of an incident (web/static/js/job-facts.js): node --test web/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  telHref, phoneText, mapLinks, hasPosition, shownName, escalationReason, handedBack,
} from '../static/js/job-facts.js';

test('a phone becomes a tel: link a phone can dial, and reads in groups', () => {
  assert.equal(telHref('+8613800138000'), 'tel:+8613800138000');
  assert.equal(telHref('+86 138-0013 8000'), 'tel:+8613800138000');
  assert.equal(telHref(''), null);
  assert.equal(telHref(null), null);
  assert.equal(telHref('call me'), null);
  assert.equal(phoneText('+8613800138000'), '+86 138 0013 8000');
  assert.equal(phoneText('+442071838750'), '+442071838750');
});

test('map links: the phone\'s map app and a web map, only with a position', () => {
  const links = mapLinks({ lat: 31.233, lon: 121.476 });
  assert.equal(links.geo, 'geo:31.233000,121.476000?q=31.233000,121.476000');
  assert.match(links.web, /^https:\/\/www\.openstreetmap\.org\/\?mlat=31\.233000&mlon=121\.476000#map=18\//);
  assert.equal(mapLinks({ lat: null, lon: null }), null);
  assert.equal(mapLinks({ lat: 31.2 }), null);
  assert.equal(hasPosition(null), false);
});

test('a name is never a phone number', () => {
  assert.equal(shownName('Li Wei'), 'Li Wei');
  assert.equal(shownName('  '), '');
  assert.equal(shownName(null), '');
  assert.equal(shownName('+8613800138000'), '');
  assert.equal(shownName('Bo 138 0013 8000'), '');
  assert.equal(shownName('resident-20481234'), 'resident-20481234'); // a generated handle, glued to a word
  assert.equal(shownName('Flat 12, Block 3'), 'Flat 12, Block 3');
  assert.equal(shownName('Tel:(021) 6123-4567'), '');
  assert.equal(shownName('１３８００１３８０００'), ''); // full-width digits are digits too
});

test('the escalation reason only while escalated, and only a known one', () => {
  assert.equal(escalationReason({ status: 'escalated', escalation_reason: 'declined' }), 'declined');
  assert.equal(escalationReason({ status: 'escalated', escalation_reason: 'something_new' }), '');
  assert.equal(escalationReason({ status: 'escalated' }), '');
  assert.equal(escalationReason({ status: 'offered', escalation_reason: 'declined' }), '');
});

test('handed back: flagged and waiting for someone again', () => {
  assert.equal(handedBack({ status: 'offered', flags: ['handed_back'] }), true);
  assert.equal(handedBack({ status: 'queued', flags: ['handed_back'] }), true);
  assert.equal(handedBack({ status: 'assigned', flags: ['handed_back'] }), false); // someone has it again
  assert.equal(handedBack({ status: 'offered', flags: [] }), false);
  assert.equal(handedBack({ status: 'offered' }), false);
});
