// ws.js request(): a request that waited for the link is sent only if still wanted (issue 19: a help
// request pressed off line and cancelled must never go out later).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from '../static/js/ws.js';

globalThis.location = { protocol: 'http:', host: 'test' };   // what a page has

function offlineSocket() {
  const sock = new Socket({ url: 'ws://test/ws', getToken: async () => 't' });
  const sent = [];
  sock.ws = { send: (frame) => sent.push(JSON.parse(frame)), close() {} };
  sock.state = 'offline';
  return { sock, sent, goLive: () => sock._setState('live') };
}

test('a request cancelled while waiting for the link is never sent', async () => {
  const { sock, sent, goLive } = offlineSocket();
  let wanted = true;
  const asked = sock.request('help.request', { request_id: 'r1' }, { waitMs: 1000, wanted: () => wanted });
  wanted = false;                               // the resident cancels while off line
  goLive();
  await assert.rejects(asked, (e) => e.code === 'withdrawn');
  assert.deepEqual(sent, []);
});

test('a request still wanted goes out once the link is live', async () => {
  const { sock, sent, goLive } = offlineSocket();
  const asked = sock.request('help.request', { request_id: 'r2' }, { waitMs: 1000, wanted: () => true });
  goLive();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(sent.length, 1);
  assert.equal(sent[0].type, 'help.request');
  assert.equal(sent[0].request_id, 'r2');
  sock._onMessage(sock.ws, { data: JSON.stringify({ type: 'ok', ref: sent[0].ref, incident: { id: 'i' } }) });
  assert.equal((await asked).incident.id, 'i');
});

test('without the link in time the request fails offline and nothing is sent', async () => {
  const { sock, sent } = offlineSocket();
  await assert.rejects(sock.request('ping', {}, { waitMs: 10 }), (e) => e.code === 'offline');
  assert.deepEqual(sent, []);
});
