// The /mediate page's live chat: following the rooms of the case on screen (chat.subscribe from
// the last contiguous seq, paging on; again after a hole, a chat.gap or a reconnect), taking in
// messages, and the outbox that sends each message with its client_msg_id until acknowledged.
// The rules are in mediate-state.js (Chat, Outbox); this carries out their effects with the
// socket, localStorage and the view.
import { t } from './i18n.js';
import { newId, store } from './api.js';
import { tid, notify, errorText } from './ui.js';
import { els } from './mediate-view.js';
import { Outbox, RETRY, afterSendError, roomsFor } from './mediate-state.js';

const OUTBOX = 'helpline.mediate.outbox'; // + '.' + account id: messages not yet acknowledged
const RESEND_MS = 3000;

/** The chat of page state S (see mediate.js), painted by view (see mediate-view.js). */
export function createChat(S, view) {
  let flushing = false;
  let flushTimer = null;

  function followRooms() {
    const c = S.openId ? S.book.get(S.openId) : null;
    if (!c || !S.active || S.chat.caseId !== c.id) return;
    for (const r of S.chat.toFollow(roomsFor(c, S.me()))) subscribe(r);
  }

  function leaveRooms() {
    if (!S.active || !S.chat.caseId) return;
    for (const r of S.chat.followedRooms()) {
      S.active.sock.request('chat.unsubscribe', { case_id: S.chat.caseId, room: r }, { waitMs: 0 }).catch(() => {});
    }
  }

  async function subscribe(r) {
    if (!S.active || !S.chat.caseId) return;
    const { sock } = S.active;
    const mine = S.chat;
    if (!mine.beginLoad(r)) return; // one is in flight: it runs once more when it ends
    try {
      for (;;) {
        const res = await sock.request('chat.subscribe', mine.subscribeFields(r));
        if (S.chat !== mine || !S.active || S.active.sock !== sock) return;
        addMessages(mine.caseId, r, res.messages || []);
        if (!mine.pageDone(r, res)) break;
      }
    } catch (e) {
      // a dropped link is picked up again at the next welcome
      if (S.chat === mine && !RETRY.has(e.code)) notify(els.chatMsg, `${t('mediate.chatFailed')} ${errorText(e)}`, 'error');
    } finally {
      if (mine.endLoad(r, S.chat === mine)) subscribe(r);
    }
  }

  /** Messages of room r (live: a chat.message push, where a hole makes us fetch what is missing). */
  function addMessages(caseId, r, list, live = false) {
    const fx = S.chat.receive(caseId, r, list, { meId: S.me().id, live });
    if (!fx) return;
    for (const id of fx.acked) dropOutbox(id);
    if (fx.refetch) subscribe(r);
    if (fx.unread) view.paintTabs();
    if (fx.current) view.paintMessages();
  }

  function switchRoom(r) {
    const follow = S.chat.select(r);
    view.paintTabs();
    view.paintMessages(true);
    if (follow) subscribe(r);
  }

  // ---- the outbox: every message leaves with a client_msg_id and is re-sent until acknowledged ----

  const outboxKey = () => `${OUTBOX}.${S.me().id}`;

  function loadOutbox() {
    S.outbox = new Outbox((S.active && store.get(outboxKey())) || []);
  }

  function saveOutbox() {
    if (S.active) store.set(outboxKey(), S.outbox.items);
  }

  function dropOutbox(clientMsgId) {
    if (S.outbox.drop(clientMsgId)) saveOutbox();
  }

  async function flushOutbox() {
    if (flushing || !S.active) return;
    flushing = true;
    const { sock } = S.active;
    try {
      // one at a time, in order: the room's order is the order they were written
      while (S.outbox.length && S.active && S.active.sock === sock) {
        const o = S.outbox.first();
        try {
          const r = await sock.request('chat.send', { case_id: o.case_id, room: o.room, client_msg_id: o.client_msg_id, body: o.body });
          dropOutbox(o.client_msg_id);
          if (r.message) addMessages(r.message.case_id, r.message.room, [r.message]);
        } catch (e) {
          if (afterSendError(e.code) === 'retry') {
            clearTimeout(flushTimer);
            flushTimer = setTimeout(flushOutbox, RESEND_MS);
            break;
          }
          dropOutbox(o.client_msg_id); // refused: sending it again would not help
          if (o.case_id === S.chat.caseId) {
            notify(els.chatMsg, `${t('mediate.sendFailed')} ${errorText(e)}`, 'error');
            const input = tid('message-input');
            if (!input.value) input.value = o.body; // give the words back
          }
        }
        if (o.case_id === S.chat.caseId) view.paintMessages();
      }
    } finally {
      flushing = false;
    }
  }

  els.sendForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = tid('message-input');
    const body = input.value.trim();
    if (!body || !S.chat.caseId || !S.active) return;
    S.outbox.add({ case_id: S.chat.caseId, room: S.chat.current, client_msg_id: newId(), body });
    saveOutbox();
    input.value = '';
    notify(els.chatMsg, '');
    view.paintMessages(true);
    flushOutbox();
  });

  tid('message-input').addEventListener('keydown', (ev) => {
    // Ctrl/⌘+Enter sends; Enter alone makes a new line (messages can be long)
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      els.sendForm.requestSubmit();
    }
  });

  return { followRooms, leaveRooms, subscribe, addMessages, switchRoom, loadOutbox, flushOutbox };
}
