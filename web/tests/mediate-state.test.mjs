// The /mediate page's state rules without a page: node --test web/tests/
// (tests/unit/test_web_modules.py runs these under pytest).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  CaseBook, Chat, Outbox, RETRY, afterSendError, openRequest, newer,
  partyOf, isMediatorOf, isAgencyOf, isFiler, canRead, roomsFor, caucusParty, isOverdue, deadlineOf,
} from '../static/js/mediate-state.js';

const ME = { id: 'me', role: 'resident' };
const msg = (seq, from = 'other', extra = {}) => ({
  case_id: 'c1', room: 'joint', seq, sender: { id: from, name: from, role: 'resident' }, body: `m${seq}`, ...extra,
});
const seqs = (chat, r = 'joint') => chat.messages(r).map((m) => m.seq);

describe('a room takes in messages by seq', () => {
  test('in order: all kept, last advances, the room on screen is repainted', () => {
    const chat = new Chat('c1');
    const fx = chat.receive('c1', 'joint', [msg(1), msg(2), msg(3)], { meId: 'me' });
    assert.deepEqual(fx, { acked: [], refetch: false, unread: false, current: true });
    assert.deepEqual(seqs(chat), [1, 2, 3]);
    assert.equal(chat.room('joint').last, 3);
  });

  test('out of order within what arrived: shown sorted, last waits for the missing seq', () => {
    const chat = new Chat('c1');
    chat.receive('c1', 'joint', [msg(3), msg(1)], { meId: 'me' });
    assert.deepEqual(seqs(chat), [1, 3]);
    assert.equal(chat.room('joint').last, 1);
    chat.receive('c1', 'joint', [msg(2)], { meId: 'me' });
    assert.equal(chat.room('joint').last, 3);
  });

  test('a duplicate seq is dropped: the first copy stays and is not counted again', () => {
    const chat = new Chat('c1');
    chat.select('caucus:me'); // joint is not on screen: its new messages are unread
    chat.receive('c1', 'joint', [msg(1), msg(2)], { meId: 'me' });
    const fx = chat.receive('c1', 'joint', [msg(2, 'other', { body: 'changed' }), msg(1)], { meId: 'me' });
    assert.equal(fx.unread, false);
    assert.equal(chat.room('joint').unread, 2);
    assert.deepEqual(chat.messages('joint').map((m) => m.body), ['m1', 'm2']);
  });

  test('what is not a message (no numeric seq) is ignored', () => {
    const chat = new Chat('c1');
    chat.receive('c1', 'joint', [null, { body: 'x' }, { ...msg(1), seq: '1' }], { meId: 'me' });
    assert.deepEqual(seqs(chat), []);
    assert.equal(chat.room('joint').last, 0);
  });

  test('messages of another case (or when no case is open) change nothing', () => {
    const chat = new Chat('c1');
    assert.equal(chat.receive('c2', 'joint', [msg(1)], { meId: 'me' }), null);
    assert.equal(chat.receive(undefined, 'joint', [msg(1)], { meId: 'me' }), null);
    assert.equal(new Chat(null).receive(null, 'joint', [msg(1)], { meId: 'me' }), null);
    assert.deepEqual(seqs(chat), []);
  });

  test('unread counts others\' messages in rooms not on screen; selecting the room clears it', () => {
    const chat = new Chat('c1');
    const fx = chat.receive('c1', 'caucus:me', [msg(1), msg(2, 'me')], { meId: 'me' });
    assert.equal(fx.unread, true);
    assert.equal(fx.current, false);
    assert.equal(chat.room('caucus:me').unread, 1); // our own message is not unread
    assert.equal(chat.select('caucus:me'), true); // not followed yet: subscribe it
    assert.equal(chat.current, 'caucus:me');
    assert.equal(chat.room('caucus:me').unread, 0);
    assert.equal(chat.receive('c1', 'caucus:me', [msg(3)], { meId: 'me' }).unread, false);
  });
});

describe('holes and gaps', () => {
  test('a live message beyond a hole asks for a re-fetch from the last contiguous seq, which fills it', () => {
    const chat = new Chat('c1');
    chat.receive('c1', 'joint', [msg(1), msg(2), msg(3)], { meId: 'me' });
    const fx = chat.receive('c1', 'joint', [msg(5)], { meId: 'me', live: true });
    assert.equal(fx.refetch, true);
    assert.equal(chat.room('joint').last, 3);
    assert.deepEqual(chat.subscribeFields('joint'), { case_id: 'c1', room: 'joint', after_seq: 3 });

    // the re-subscribe answers from seq 4 (5 again, which is dropped)
    assert.equal(chat.beginLoad('joint'), true);
    chat.receive('c1', 'joint', [msg(4), msg(5)], { meId: 'me' });
    assert.equal(chat.pageDone('joint', { messages: [msg(4), msg(5)], has_more: false }), false);
    assert.equal(chat.endLoad('joint', true), false);
    assert.deepEqual(seqs(chat), [1, 2, 3, 4, 5]);
    assert.equal(chat.room('joint').last, 5);

    // the next live message is contiguous: nothing to fetch
    assert.equal(chat.receive('c1', 'joint', [msg(6)], { meId: 'me', live: true }).refetch, false);
  });

  test('the next live message still re-fetches while the hole is open', () => {
    const chat = new Chat('c1');
    chat.receive('c1', 'joint', [msg(1)], { meId: 'me' });
    assert.equal(chat.receive('c1', 'joint', [msg(3)], { meId: 'me', live: true }).refetch, true);
    assert.equal(chat.receive('c1', 'joint', [msg(4)], { meId: 'me', live: true }).refetch, true);
    assert.equal(chat.receive('c1', 'joint', [msg(2)], { meId: 'me', live: true }).refetch, false);
    assert.equal(chat.room('joint').last, 4);
  });

  test('a page or a send answer beyond a hole does not itself re-fetch (only live pushes do)', () => {
    const chat = new Chat('c1');
    const fx = chat.receive('c1', 'joint', [msg(2)], { meId: 'me' });
    assert.equal(fx.refetch, false);
    assert.equal(chat.room('joint').last, 0);
  });

  test('subscribing pages on while the server has more, from the last seq received', () => {
    const chat = new Chat('c1');
    assert.equal(chat.beginLoad('joint'), true);
    assert.equal(chat.subscribeFields('joint').after_seq, 0);
    const page1 = [msg(1), msg(2)];
    chat.receive('c1', 'joint', page1, { meId: 'me' });
    assert.equal(chat.pageDone('joint', { messages: page1, has_more: true }), true);
    assert.equal(chat.room('joint').followed, true);
    assert.equal(chat.subscribeFields('joint').after_seq, 2);
    // has_more with an empty page stops (no endless loop)
    assert.equal(chat.pageDone('joint', { messages: [], has_more: true }), false);
    assert.equal(chat.pageDone('joint', { has_more: false }), false);
  });

  test('a subscribe asked for while one is in flight runs once more when it ends, if the case is still shown', () => {
    const chat = new Chat('c1');
    assert.equal(chat.beginLoad('joint'), true);
    assert.equal(chat.beginLoad('joint'), false); // a chat.gap meanwhile
    assert.equal(chat.beginLoad('joint'), false); // and another: still one more round
    assert.equal(chat.endLoad('joint', true), true);
    assert.equal(chat.beginLoad('joint'), true);
    assert.equal(chat.endLoad('joint', true), false);

    const other = new Chat('c1');
    other.beginLoad('joint');
    other.beginLoad('joint');
    assert.equal(other.endLoad('joint', false), false); // another case is on screen now
    assert.equal(other.room('joint').loading, false);
  });

  test('after a reconnect every room is followed again from its last seq; rooms in flight are not doubled', () => {
    const chat = new Chat('c1');
    for (const r of ['joint', 'caucus:me']) {
      chat.beginLoad(r);
      chat.pageDone(r, { messages: [] });
      chat.endLoad(r, true);
    }
    chat.receive('c1', 'joint', [msg(1), msg(2)], { meId: 'me' });
    assert.deepEqual(chat.toFollow(['joint', 'caucus:me']), []);
    assert.deepEqual(chat.followedRooms(), ['joint', 'caucus:me']);
    chat.lostFeeds();
    assert.deepEqual(chat.followedRooms(), []);
    chat.beginLoad('caucus:me');
    assert.deepEqual(chat.toFollow(['joint', 'caucus:me']), ['joint']);
    assert.equal(chat.subscribeFields('joint').after_seq, 2);
  });

  test('the room on screen falls back to the joint room when it is no longer readable', () => {
    const chat = new Chat('c1');
    chat.select('caucus:p2');
    chat.keepCurrentIn(['joint', 'caucus:p1']);
    assert.equal(chat.current, 'joint');
    chat.select('caucus:p1');
    chat.keepCurrentIn(['joint', 'caucus:p1']);
    assert.equal(chat.current, 'caucus:p1');
  });
});

describe('the outbox', () => {
  const entry = (id, room = 'joint', caseId = 'c1') => ({ case_id: caseId, room, client_msg_id: id, body: `body ${id}` });

  test('sends the oldest first and shows the unacknowledged ones of the room on screen as pending', () => {
    const box = new Outbox();
    box.add(entry('a'));
    box.add(entry('b', 'caucus:me'));
    box.add(entry('c'));
    assert.equal(box.length, 3);
    assert.equal(box.first().client_msg_id, 'a');
    assert.deepEqual(box.pending('c1', 'joint').map((o) => o.client_msg_id), ['a', 'c']);
    assert.deepEqual(box.pending('c2', 'joint'), []);
  });

  test('a retryable failure keeps the message: the re-send carries the same client_msg_id', () => {
    for (const code of RETRY) assert.equal(afterSendError(code), 'retry', code);
    for (const code of ['forbidden', 'bad_request', 'not_found', 'conflict', 'error', undefined]) {
      assert.equal(afterSendError(code), 'drop', String(code));
    }
    const box = new Outbox([entry('a'), entry('b')]); // as saved before a reload
    assert.equal(afterSendError('disconnected'), 'retry');
    assert.equal(box.first().client_msg_id, 'a'); // still first: sent again with the same id
    assert.equal(box.length, 2);
  });

  test('our own message coming back with its client_msg_id acknowledges it, then the next goes', () => {
    const box = new Outbox([entry('a'), entry('b')]);
    const chat = new Chat('c1');
    const fx = chat.receive('c1', 'joint', [msg(1, 'me', { client_msg_id: 'a' }), msg(2, 'other', { client_msg_id: 'x' })],
      { meId: 'me', live: true });
    assert.deepEqual(fx.acked, ['a']); // only our own
    for (const id of fx.acked) assert.equal(box.drop(id), true);
    assert.equal(box.drop('a'), false); // already gone: nothing to save
    assert.equal(box.first().client_msg_id, 'b');
    // our own message without a client_msg_id (sent by SMS, or from another page) acknowledges nothing
    assert.deepEqual(chat.receive('c1', 'joint', [msg(3, 'me')], { meId: 'me' }).acked, []);
  });

  test('a refused message is dropped; nothing saved is an empty outbox', () => {
    const box = new Outbox([entry('a')]);
    assert.equal(afterSendError('forbidden'), 'drop');
    assert.equal(box.drop('a'), true);
    assert.equal(box.length, 0);
    assert.equal(box.first(), undefined);
    assert.equal(new Outbox(null).length, 0);
    assert.equal(new Outbox().length, 0);
  });
});

describe('case copies', () => {
  const cs = (id, version, extra = {}) => ({ id, version, status: 'filed', created_at: '2026-11-29T10:00:00Z', ...extra });

  test('the highest version wins; an equal one replaces; a missing one counts as 0', () => {
    const book = new CaseBook();
    assert.equal(book.keep(cs('a', 2)).version, 2);
    assert.equal(book.keep(cs('a', 1)).version, 2); // a late, older copy: the kept one is returned
    const same = cs('a', 2, { summary: 'again' });
    assert.equal(book.keep(same), same);
    assert.equal(book.keep(cs('a', 3)).version, 3);
    assert.equal(newer({}, {}), true);
    assert.equal(newer({ version: 1 }, {}), false);
    assert.equal(book.keep(null), null);
    assert.equal(book.keep({ version: 9 }), null);
    assert.equal(book.size, 1);
  });

  test('a snapshot replaces the list but keeps newer copies, pushes during the request and the open case', () => {
    const book = new CaseBook();
    book.keep(cs('old', 1)); // the server no longer lists it: dropped
    book.keep(cs('open', 1)); // on screen: kept though unlisted
    book.keep(cs('newer', 5)); // the answer has an older copy: ours stays
    const snap = book.beginSnapshot();
    book.keep(cs('pushed', 1)); // pushed while the request was in flight: kept though unlisted
    book.applySnapshot(snap, [[cs('newer', 4), cs('listed', 1)], [cs('listed', 2)]], 'open');
    book.endSnapshot(snap);
    assert.deepEqual([...book.cases.keys()].sort(), ['listed', 'newer', 'open', 'pushed']);
    assert.equal(book.get('newer').version, 5);
    assert.equal(book.get('listed').version, 2); // watch and mine both list it: the newest copy
    assert.equal(book.pushed, null);
    book.keep(cs('later', 1));
    assert.equal(book.pushed, null); // no snapshot in flight: nothing recorded
  });

  test('an older snapshot ending does not end a newer one in flight', () => {
    const book = new CaseBook();
    const first = book.beginSnapshot();
    const second = book.beginSnapshot();
    book.endSnapshot(first);
    assert.equal(book.pushed, second);
    book.endSnapshot(second);
    assert.equal(book.pushed, null);
  });

  test('a resident\'s case opens by itself: the saved one if known, else the only one', () => {
    const book = new CaseBook();
    assert.equal(book.autoOpenId('x'), null);
    book.keep(cs('a', 1));
    assert.equal(book.autoOpenId(null), 'a');
    assert.equal(book.autoOpenId('gone'), 'a');
    book.keep(cs('b', 1));
    assert.equal(book.autoOpenId(null), null);
    assert.equal(book.autoOpenId('b'), 'b');
  });

  test('the list groups: a mediator sees theirs, the waiting (oldest first), others\', their closed ones', () => {
    const med = { id: 'm1', role: 'mediator' };
    const at = (h) => `2026-11-29T${String(h).padStart(2, '0')}:00:00Z`;
    const book = new CaseBook();
    book.keep(cs('mine-old', 1, { mediator: { id: 'm1' }, status: 'in_mediation', created_at: at(1) }));
    book.keep(cs('mine-new', 1, { mediator: { id: 'm1' }, status: 'in_mediation', created_at: at(2), updated_at: at(9) }));
    book.keep(cs('wait-new', 1, { created_at: at(5) }));
    book.keep(cs('wait-old', 1, { created_at: at(3) }));
    book.keep(cs('theirs', 1, { mediator: { id: 'm2' }, status: 'in_mediation' }));
    book.keep(cs('closed-mine', 1, { mediator: { id: 'm1' }, status: 'settled' }));
    book.keep(cs('closed-theirs', 1, { mediator: { id: 'm2' }, status: 'withdrawn' }));
    const ids = (groups) => groups.map(([key, list]) => [key, list.map((c) => c.id)]);
    assert.deepEqual(ids(book.groups(med)), [
      ['mediate.groupOverdue', []],
      ['mediate.groupMine', ['mine-new', 'mine-old']],
      ['mediate.groupWaiting', ['wait-old', 'wait-new']],
      ['mediate.groupOthers', ['theirs']],
      ['mediate.groupClosed', ['closed-mine']],
    ]);
    assert.deepEqual(ids(book.groups(ME)).map(([key, list]) => [key, list.length]), [
      ['mediate.groupOpen', 5], ['mediate.groupClosed', 2],
    ]);
  });

  test('overdue cases come first, the earliest deadline first, and leave their usual group', () => {
    const med = { id: 'm1', role: 'mediator' };
    const at = (h) => `2026-11-29T${String(h).padStart(2, '0')}:00:00Z`;
    const book = new CaseBook();
    book.keep(cs('mine-late', 1, { mediator: { id: 'm1' }, status: 'in_mediation', overdue: true, due_at: at(8) }));
    book.keep(cs('wait-late', 1, { overdue: true, take_by: at(4), due_at: at(20), created_at: at(1) }));
    book.keep(cs('wait', 1, { created_at: at(2) }));
    book.keep(cs('closed-late', 1, { mediator: { id: 'm1' }, status: 'failed', overdue: true }));
    const ids = (groups) => groups.map(([key, list]) => [key, list.map((c) => c.id)]);
    assert.deepEqual(ids(book.groups(med)), [
      ['mediate.groupOverdue', ['wait-late', 'mine-late']],
      ['mediate.groupMine', []],
      ['mediate.groupWaiting', ['wait']],
      ['mediate.groupOthers', []],
      ['mediate.groupClosed', ['closed-late']],
    ]);
    assert.deepEqual(ids(book.groups(ME))[0], ['mediate.groupOpen', ['mine-late', 'wait-late', 'wait']]);
    assert.equal(isOverdue({ overdue: true, status: 'settled' }), false);
    assert.equal(deadlineOf({ take_by: at(1), due_at: at(2) }), at(1));
    assert.equal(deadlineOf({ take_by: null, due_at: at(2) }), at(2));
  });
});

describe('who reads which room', () => {
  const c = {
    id: 'c1',
    parties: [{ id: 'p1', name: 'Ann', filer: true }, { id: 'p2', name: 'Bo', via: 'sms' }],
    mediator: { id: 'm1' },
    agencies: [{ id: 'a1' }],
  };

  test('the mediator reads every caucus, a party their own, an agency the joint room, others none', () => {
    assert.deepEqual(roomsFor(c, { id: 'm1', role: 'mediator' }), ['joint', 'caucus:p1', 'caucus:p2']);
    assert.deepEqual(roomsFor(c, { id: 'p2', role: 'resident' }), ['joint', 'caucus:p2']);
    assert.deepEqual(roomsFor(c, { id: 'a1', role: 'agency' }), ['joint']);
    assert.deepEqual(roomsFor(c, { id: 'm2', role: 'mediator' }), []);
    assert.deepEqual(roomsFor(c, {}), []);
    assert.equal(canRead(c, { id: 'a1', role: 'mediator' }), false); // the id alone is not enough
  });

  test('roles: filer, party, mediator, agency; the party of a caucus room', () => {
    assert.equal(isFiler(c, { id: 'p1' }), true);
    assert.equal(isFiler(c, { id: 'p2' }), false);
    assert.equal(partyOf(c, { id: 'p2' }).name, 'Bo');
    assert.equal(partyOf(c, { id: 'x' }), null);
    assert.equal(isMediatorOf({ ...c, mediator: null }, { id: 'm1', role: 'mediator' }), false);
    assert.equal(isAgencyOf(c, { id: 'a1', role: 'agency' }), true);
    assert.equal(caucusParty(c, 'caucus:p2').name, 'Bo');
    assert.equal(caucusParty(c, 'joint'), null);
  });
});

describe('opening a case', () => {
  test('the same form sent again keeps its request_id; a changed form gets a new one', () => {
    let n = 0;
    const makeId = () => `id${++n}`;
    const form = { category: 'neighbour', summary: 'noise', other_parties: [{ name: 'Bo' }] };
    const first = openRequest(null, form, makeId);
    assert.equal(first.id, 'id1');
    assert.equal(openRequest(first, { ...form }, makeId), first);
    const changed = openRequest(first, { ...form, summary: 'noise at night' }, makeId);
    assert.equal(changed.id, 'id2');
  });
});
