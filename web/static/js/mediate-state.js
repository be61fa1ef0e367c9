// The /mediate page's state and its rules, without a page: no DOM, no WebSocket, no storage.
// The page (mediate.js and its mediate-*.js helpers) feeds in what the server said and carries
// out what comes back: what to re-fetch, which sent messages are acknowledged, what to repaint.
// Tested on its own by web/tests/mediate-state.test.mjs (node --test).
//
//   case copies   every copy carries `version`; the highest wins (pushes and answers can cross).
//                 A case-list snapshot replaces the list but keeps any newer copy pushed while
//                 it was in flight, and the case on screen.
//   rooms         each room keeps its messages by seq (each seq once) and `last`, the highest seq
//                 up to which it has every message. A live message beyond `last + 1` is a hole:
//                 the page re-subscribes with after_seq = last, paging on while has_more. So do a
//                 reconnect (feeds are lost: lostFeeds) and a chat.gap push.
//   outbox        every message goes out with a client_msg_id and stays in the outbox until the
//                 server acknowledges it (the send's answer, or our own message coming back with
//                 that id), one at a time and in order; a RETRY error keeps it, any other drops it.
import { CASE_FINAL } from './status.js';

/** Errors after which the outcome is unknown or the command may succeed later: keep and retry. */
export const RETRY = new Set(['disconnected', 'timeout', 'offline', 'unavailable', 'rate_limited']);

// ---- who is `me` to a case (me: the signed-in account, {} when nobody) -----------------------

export const partyOf = (c, me) => (c.parties || []).find((p) => p.id === me.id) || null;
export const isMediatorOf = (c, me) => me.role === 'mediator' && !!c.mediator && c.mediator.id === me.id;
export const isAgencyOf = (c, me) => me.role === 'agency' && (c.agencies || []).some((a) => a.id === me.id);
export const isFiler = (c, me) => { const p = partyOf(c, me); return !!p && !!p.filer; };
export const canRead = (c, me) => !!partyOf(c, me) || isMediatorOf(c, me) || isAgencyOf(c, me);

/** The rooms `me` may read: the mediator every caucus, a party their own, an agency the joint room only. */
export function roomsFor(c, me) {
  if (!canRead(c, me)) return [];
  if (isMediatorOf(c, me)) return ['joint', ...(c.parties || []).map((p) => `caucus:${p.id}`)];
  if (partyOf(c, me)) return ['joint', `caucus:${me.id}`];
  return ['joint']; // agencies: the joint room only
}

/** The party whose caucus room r is (or null). */
export const caucusParty = (c, r) => (c.parties || []).find((p) => `caucus:${p.id}` === r) || null;

// ---- case copies: the highest version wins ---------------------------------------------------

/** Is b at least as new as a (the same case)? An equal version replaces too. */
export function newer(a, b) {
  return (b.version ?? 0) >= (a.version ?? 0);
}

const byNewest = (a, b) => Date.parse(b.updated_at || b.created_at) - Date.parse(a.updated_at || a.created_at);
const byOldest = (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at);

/** An open case past a deadline (the server marks it: `overdue`). */
export const isOverdue = (c) => !!c.overdue && !CASE_FINAL.has(c.status);
/** The deadline that applies: take_by while nobody took the case, else due_at. */
export const deadlineOf = (c) => c.take_by || c.due_at || null;
const byDeadline = (a, b) => Date.parse(deadlineOf(a) || a.created_at) - Date.parse(deadlineOf(b) || b.created_at);

export class CaseBook {
  constructor() {
    this.cases = new Map(); // id -> the newest copy seen
    this.pushed = null; // ids seen while a snapshot is in flight
  }

  get(id) { return this.cases.get(id); }
  has(id) { return this.cases.has(id); }
  get size() { return this.cases.size; }
  clear() { this.cases.clear(); }

  /** Keep c unless an older copy; returns the copy now kept (null for no case). */
  keep(c) {
    if (!c || !c.id) return null;
    if (this.pushed) this.pushed.add(c.id);
    const old = this.cases.get(c.id);
    if (old && !newer(old, c)) return old;
    this.cases.set(c.id, c);
    return c;
  }

  /** A case-list request goes out; returns its token for applySnapshot/endSnapshot. */
  beginSnapshot() {
    this.pushed = new Set();
    return this.pushed;
  }

  /**
   * The list is now what the answers say (arrays of cases, e.g. cases.watch and cases.mine),
   * except that a newer copy we hold wins, and a case the answers lack stays if it was pushed
   * while the request was in flight or is the one on screen (keepId).
   */
  applySnapshot(token, lists, keepId) {
    const fresh = new Map();
    for (const c of lists.flat()) {
      const o = fresh.get(c.id);
      if (!o || newer(o, c)) fresh.set(c.id, c);
    }
    for (const [id, old] of this.cases) {
      const n = fresh.get(id);
      if (n ? !newer(old, n) : token.has(id) || id === keepId) fresh.set(id, old);
    }
    this.cases = fresh;
  }

  endSnapshot(token) {
    if (this.pushed === token) this.pushed = null;
  }

  /** The case to open by itself for a resident: the saved one if known, else the only one. */
  autoOpenId(savedId) {
    if (savedId && this.cases.has(savedId)) return savedId;
    if (this.cases.size === 1) return [...this.cases.keys()][0];
    return null;
  }

  /** The case list as [i18n key of the heading, cases] groups, in order (empty ones included). */
  groups(me) {
    const list = [...this.cases.values()];
    const all = list.filter((c) => !CASE_FINAL.has(c.status));
    if (me.role === 'mediator') {
      // overdue cases first (issue 15), the earliest deadline first; the other groups hold the rest
      const open = all.filter((c) => !isOverdue(c));
      const mine = (c) => isMediatorOf(c, me);
      return [
        ['mediate.groupOverdue', all.filter(isOverdue).sort(byDeadline)],
        ['mediate.groupMine', open.filter(mine).sort(byNewest)],
        ['mediate.groupWaiting', open.filter((c) => !c.mediator).sort(byOldest)],
        ['mediate.groupOthers', open.filter((c) => c.mediator && !mine(c)).sort(byNewest)],
        ['mediate.groupClosed', list.filter((c) => CASE_FINAL.has(c.status) && mine(c)).sort(byNewest)],
      ];
    }
    return [
      ['mediate.groupOpen', all.sort(byNewest).sort((a, b) => isOverdue(b) - isOverdue(a))], // overdue first
      ['mediate.groupClosed', list.filter((c) => CASE_FINAL.has(c.status)).sort(byNewest)],
    ];
  }
}

// ---- the rooms of the case on screen ------------------------------------------------------------

export function newRoom() {
  // followed: the server sends us its live messages; loading: a chat.subscribe is in flight;
  // again: another was asked for meanwhile (one more round when this one ends)
  return { msgs: new Map(), last: 0, followed: false, loading: false, again: false, unread: 0 };
}

export class Chat {
  constructor(caseId) {
    this.caseId = caseId;
    this.rooms = new Map(); // room -> newRoom()
    this.current = 'joint'; // the room on screen
  }

  room(r) {
    if (!this.rooms.has(r)) this.rooms.set(r, newRoom());
    return this.rooms.get(r);
  }

  /**
   * Messages of room r arrived (a subscribe page, a send's answer, or live: a chat.message push).
   * Returns null when they are not for this case, else the effects:
   *   acked    client_msg_ids of our own messages now stored (drop them from the outbox)
   *   refetch  a live message landed beyond a hole: subscribe again from `last`
   *   unread   the unread count of a room not on screen went up (repaint the tabs)
   *   current  r is the room on screen (repaint the messages)
   */
  receive(caseId, r, list, { meId, live = false } = {}) {
    if (!caseId || caseId !== this.caseId) return null;
    const st = this.room(r);
    const acked = [];
    let fresh = 0;
    for (const m of list) {
      if (!m || typeof m.seq !== 'number' || st.msgs.has(m.seq)) continue; // each seq once
      st.msgs.set(m.seq, m);
      const own = m.sender && m.sender.id === meId;
      if (own && m.client_msg_id) acked.push(m.client_msg_id);
      if (!own) fresh += 1;
    }
    while (st.msgs.has(st.last + 1)) st.last += 1;
    const refetch = live && st.msgs.size > st.last;
    const unread = r !== this.current && fresh > 0;
    if (unread) st.unread += fresh;
    return { acked, refetch, unread, current: r === this.current };
  }

  /** The room's messages in seq order. */
  messages(r) {
    return [...this.room(r).msgs.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Put room r on screen: its unread count is cleared. Returns true if it must be subscribed. */
  select(r) {
    this.current = r;
    this.room(r).unread = 0;
    return !this.room(r).followed;
  }

  /** The case changed: if the room on screen is no longer readable, show the joint room. */
  keepCurrentIn(rooms) {
    if (!rooms.includes(this.current)) this.current = 'joint';
  }

  /** A new connection: the server ended our room feeds with the old one. */
  lostFeeds() {
    for (const st of this.rooms.values()) st.followed = false;
  }

  /** Of these readable rooms, those to subscribe to (not followed, none in flight). */
  toFollow(rooms) {
    return rooms.filter((r) => { const st = this.room(r); return !st.followed && !st.loading; });
  }

  /** The rooms we follow (to unsubscribe when leaving the case). */
  followedRooms() {
    return [...this.rooms].filter(([, st]) => st.followed).map(([r]) => r);
  }

  /** A subscribe of room r starts; false if one is in flight (it will run once more at its end). */
  beginLoad(r) {
    const st = this.room(r);
    if (st.loading) {
      st.again = true;
      return false;
    }
    st.loading = true;
    return true;
  }

  /** The chat.subscribe fields for room r: from the last contiguous seq. */
  subscribeFields(r) {
    return { case_id: this.caseId, room: r, after_seq: this.room(r).last };
  }

  /** One page of chat.subscribe was received (after receive()): true when to ask for the next. */
  pageDone(r, res) {
    this.room(r).followed = true;
    return !!res.has_more && (res.messages || []).length > 0; // page on from the last seq received
  }

  /** The subscribe of room r ended; true when another was asked for meanwhile (run it now). */
  endLoad(r, stillShown) {
    const st = this.room(r);
    st.loading = false;
    if (st.again && stillShown) {
      st.again = false;
      return true;
    }
    return false;
  }
}

// ---- the outbox: [{case_id, room, client_msg_id, body}] sent, not yet acknowledged ------------

export class Outbox {
  constructor(items) {
    this.items = items || [];
  }

  get length() { return this.items.length; }

  /** The next to send: the oldest (a room's order is the order its messages were written). */
  first() { return this.items[0]; }

  add(entry) { this.items.push(entry); }

  /** Drop an acknowledged (or refused) message; true if it was here (save the outbox then). */
  drop(clientMsgId) {
    const n = this.items.length;
    this.items = this.items.filter((o) => o.client_msg_id !== clientMsgId);
    return this.items.length !== n;
  }

  /** Still unacknowledged in this room: shown as "sending". */
  pending(caseId, room) {
    return this.items.filter((o) => o.case_id === caseId && o.room === room);
  }
}

/** What a failed chat.send means for its message: 'retry' (keep it, try again later) or 'drop'. */
export function afterSendError(code) {
  return RETRY.has(code) ? 'retry' : 'drop';
}

// ---- opening a case --------------------------------------------------------------------------

/**
 * The request_id for a case.open: the same form sent again after a lost answer keeps the pending
 * one (the server then returns the case it opened), a changed form gets a new one.
 * Returns the pending {key, id} to use and keep until an answer comes.
 */
export function openRequest(pending, fields, makeId) {
  const key = JSON.stringify(fields);
  return pending && pending.key === key ? pending : { key, id: makeId() };
}

/**
 * What a refused case.open for visitors says about one row of the form, from the server's message
 * (`parties[i].phone: …`): {index, field: 'phone'|'name', key: the strings.js key to show}, or null
 * when the refusal is about something else.
 */
export function visitError(e) {
  if (!e || e.code !== 'bad_request' || typeof e.message !== 'string') return null;
  const m = /parties\[(\d+)\]\.(phone|name)/.exec(e.message);
  if (!m) return null;
  const index = Number(m[1]);
  if (m[2] === 'name') return { index, field: 'name', key: 'visit.nameBad' };
  if (/same number/.test(e.message)) return { index, field: 'phone', key: 'visit.phoneTwice' };
  if (/only numbers in/.test(e.message)) return { index, field: 'phone', key: 'visit.phoneAbroad' };
  return { index, field: 'phone', key: 'visit.phoneBad' };
}

/** Whether `me` opened this case for visitors and it is still theirs to add to (no mediator yet). */
export const isOpenerOf = (c, me) => !!c.opened_by && c.opened_by.id === me.id && !c.mediator;
