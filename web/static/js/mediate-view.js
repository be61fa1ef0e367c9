// The /mediate page's painting: the case list, one case (who is in it, codes, tools, the
// agreement or the settlement record) and its rooms' tabs and messages. It reads the page state S
// (see mediate.js); all it changes there is the room on screen when that is no longer readable and
// which case the proposal box was pre-filled for. Clicks go to the page through
// `on` ({openCase(id), switchRoom(room)}).
import { t, getLang } from './i18n.js';
import { h, tid, fmtTime } from './ui.js';
import { CASE_FINAL as FINAL, CASE_TALKING as TALKING } from './status.js';
import { partyOf, isMediatorOf, isFiler, isOpenerOf, canRead, roomsFor, caucusParty, isOverdue } from './mediate-state.js';

export const $ = (id) => document.getElementById(id);
export const els = {
  login: $('login'),
  app: $('app'),
  myCasesLine: $('my-cases-line'),
  myCases: $('my-cases'),
  joinForm: $('join-form'),
  joinMsg: $('join-msg'),
  openForm: $('open-form'),
  openMsg: $('open-msg'),
  partyRows: $('party-rows'),
  addParty: $('add-party'),
  casesHeading: $('cases-heading'),
  newCase: $('new-case'),
  cases: $('cases'),
  casesEmpty: $('cases-empty'),
  casesMsg: $('cases-msg'),
  pickCase: $('pick-case'),
  case: $('case'),
  codesBox: $('codes-box'),
  codes: $('codes'),
  codesHint: $('codes-hint'),
  finalBox: $('final-box'),
  takeBox: $('take-box'),
  take: $('take'),
  notYours: $('not-yours'),
  tools: $('tools'),
  withdrawBox: $('withdraw-box'),
  withdrawConfirm: $('withdraw-confirm-box'),
  chat: $('chat'),
  chatOff: $('chat-off'),
  rooms: $('rooms'),
  roomHint: $('room-hint'),
  messages: $('messages'),
  messagesEmpty: $('messages-empty'),
  sendForm: $('send-form'),
  agCurrent: $('agreement-current'),
  agMeta: $('ag-meta'),
  agText: $('agreement-shown'),
  signatures: $('signatures'),
  proposeBox: $('propose-box'),
  proposeHint: $('propose-hint'),
  signBox: $('sign-box'),
  signBanner: $('sign-banner'),
  settlement: $('settlement'),
  caseMsg: $('case-msg'),
  keepBox: $('keep-box'),
  chatMsg: $('chat-msg'), // beside the message box: a failed send is said where it was typed
  deadline: $('c-deadline'),
  feedbackBox: $('feedback-box'),
  feedbackGiven: $('feedback-given'),
};

// A party without a name (a filer who left it blank is stored with none; records from before
// migration 016 say "Applicant" in English) is shown in the page's language: "Applicant" for the
// filer, "Party" for anyone else.
const PLACEHOLDER_NAMES = new Set(['', 'Applicant']);
export function shownName(name, filer = true) {
  if (!PLACEHOLDER_NAMES.has((name || '').trim())) return name;
  return t(filer ? 'mediate.applicant' : 'mediate.party');
}

/** The name of the case's party with this account id (or of the sender, as given), in words. */
function nameIn(c, id, name) {
  const p = c ? (c.parties || []).find((x) => x.id === id) : null;
  return shownName(name, p ? !!p.filer : true);
}

function fmtWhen(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(getLang(), { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** The painters for page state S. */
export function createView(S, on) {
  function roomLabel(c, r) {
    if (r === 'joint') return t('mediate.joint');
    if (partyOf(c, S.me())) return t('mediate.caucusMine');
    const party = caucusParty(c, r);
    return t('mediate.caucus', { name: party ? shownName(party.name, party.filer) : '' });
  }

  function roomHint(c, r) {
    if (r === 'joint') return t('mediate.jointHint');
    if (partyOf(c, S.me())) return t('mediate.caucusMineHint');
    const party = caucusParty(c, r);
    if (party && party.via === 'sms') return t('mediate.caucusSmsHint', { name: shownName(party.name, party.filer) });
    return t('mediate.caucusHint', { name: party ? shownName(party.name, party.filer) : '' });
  }

  function caseRow(c) {
    const others = (c.parties || []).length;
    return h('li', {}, h('button', {
      testid: 'case-row',
      class: `case-row${c.id === S.openId ? ' selected' : ''}`,
      data: { caseId: c.id, status: c.status },
      attrs: { type: 'button', 'aria-current': c.id === S.openId ? 'true' : false },
      on: {
        click: () => {
          on.openCase(c.id);
          if (window.matchMedia('(max-width: 899px)').matches) els.case.scrollIntoView({ block: 'start' }); // stacked layout
        },
      },
    },
    h('span', { class: 'row-top' },
      h('strong', { class: 'ref', text: c.ref_no }),
      h('span', { class: `badge case-${c.status}`, text: t(`case.${c.status}`) }),
      isOverdue(c) ? h('span', { testid: 'case-overdue', class: 'badge badge-overdue', text: `⚠ ${t('mediate.overdue')}` }) : null,
      h('span', { class: 'cat', text: t(`casecat.${c.category}`) })),
    h('span', { class: 'summary', text: c.summary || '' }),
    h('span', { class: 'row-meta', text: t('mediate.rowMeta', { n: others, when: fmtWhen(c.created_at) }) })));
  }

  function renderCases() {
    const role = S.me().role;
    els.casesHeading.textContent = t(role === 'mediator' ? 'mediate.casesTitle' : role === 'agency' ? 'mediate.agencyCases' : 'mediate.myCases');
    const parts = [];
    let shown = 0;
    if (S.active) {
      for (const [key, list] of S.book.groups(S.me())) {
        if (!list.length) continue;
        shown += list.length;
        parts.push(h('h3', { class: 'group', text: `${t(key)} (${list.length})` }), h('ul', { class: 'case-list' }, list.map(caseRow)));
      }
    }
    els.cases.replaceChildren(...parts);
    els.casesEmpty.hidden = shown > 0;
    els.casesEmpty.textContent = t(role === 'mediator' ? 'mediate.casesEmpty' : role === 'agency' ? 'mediate.agencyEmpty' : 'mediate.myEmpty');
    paintMyCasesButton();
  }

  function paintMyCasesButton() {
    const n = S.mode === 'resident' ? S.book.size : 0;
    els.myCasesLine.hidden = !n;
    $('reclaim').hidden = n > 0; // this browser has cases already: linking a phone is offered inside them
    els.myCases.textContent = t('mediate.myCasesButton', { n });
  }

  function paintCase() {
    const c = S.openId ? S.book.get(S.openId) : null;
    els.case.hidden = !c;
    els.pickCase.hidden = !!c || !S.active;
    if (!c) return;
    const you = S.me();
    const final = FINAL.has(c.status);
    const status = $('c-status');
    status.textContent = t(`case.${c.status}`);
    status.className = `badge case-${c.status}`;
    status.dataset.status = c.status;
    $('c-ref').textContent = c.ref_no;
    $('c-meta').textContent = t('mediate.meta', { cat: t(`casecat.${c.category}`), when: fmtWhen(c.created_at) })
      + (c.opened_by ? ` · ${t('mediate.openedBy', { name: c.opened_by.name })}` : '');
    $('c-summary').textContent = c.summary || '';
    paintDeadline(c, final);
    paintFeedback(c);

    // who is in it: the joined parties, then those named but not joined yet
    const party = (p) => h('li', { class: p.id === you.id ? 'me' : '' },
      h('span', { class: 'name', text: shownName(p.name, p.filer) }),
      p.id === you.id ? h('span', { class: 'tag', text: t('mediate.you') }) : null,
      p.filer ? h('span', { class: 'tag', text: t('mediate.filer') }) : null,
      p.via === 'sms' ? h('span', { class: 'tag', text: t('mediate.viaSms') }) : null,
      p.phone ? h('span', { class: 'phone', text: p.phone }) : null,
      p.signed ? h('span', { class: 'tag tag-ok', text: `✓ ${t('mediate.signed')}` }) : null);
    const waiting = (c.invited || []).filter((i) => !i.joined).map((i) => h('li', { class: 'waiting' },
      h('span', { class: 'name', text: i.name }),
      h('span', { class: 'tag', text: t('mediate.notJoined') }),
      i.phone ? h('span', { class: 'phone', text: i.phone }) : null));
    $('c-parties').replaceChildren(...(c.parties || []).map(party), ...waiting);
    $('c-mediator').textContent = c.mediator ? c.mediator.name : t('mediate.noMediator');
    $('c-agencies').textContent = (c.agencies || []).map((a) => a.name).join(t('punct.list')) || '—';

    // the join codes, for the filer and the case's mediator while someone has not joined
    const codes = (c.invited || []).filter((i) => i.join_code && !i.joined);
    els.codesBox.hidden = final || !codes.length;
    els.codesHint.textContent = t(isFiler(c, you) ? 'mediate.codesHint' : 'mediate.codesHintStaff', { url: `${location.origin}/mediate` });
    els.codes.replaceChildren(...codes.map((i) => h('li', { testid: 'invite-code', data: { code: i.join_code } },
      h('span', { class: 'name', text: i.name }),
      h('code', { class: 'code', text: i.join_code }))));

    paintAddParty(c, final);
    paintKeep(c);

    els.finalBox.hidden = !final;
    if (final) {
      const parts = [t(`mediate.final.${c.status}`)];
      if (c.closed_at) parts.push(fmtWhen(c.closed_at));
      if (c.outcome_note) parts.push(c.outcome_note);
      els.finalBox.textContent = parts.join(t('punct.dash'));
      els.finalBox.dataset.status = c.status;
    }

    const mediator = you.role === 'mediator';
    els.takeBox.hidden = !(mediator && !c.mediator && c.status === 'filed');
    els.notYours.hidden = !(mediator && !isMediatorOf(c, you));
    els.notYours.textContent = c.mediator ? t('mediate.handledBy', { name: c.mediator.name }) : t('mediate.takeToRead');
    els.tools.hidden = !(isMediatorOf(c, you) && !final);
    els.withdrawBox.hidden = !(isFiler(c, you) && !final);

    // the conversation
    const readable = canRead(c, you);
    els.chat.hidden = !readable;
    els.sendForm.hidden = final; // a closed case can still be read
    els.chatOff.hidden = !(readable && final);
    els.chatOff.textContent = t('mediate.closedChat');
    const rooms = roomsFor(c, you);
    S.chat.keepCurrentIn(rooms);
    paintTabs(c, rooms);
    paintMessages();

    paintAgreement(c);
  }

  // the deadline that applies (issue 15): take_by while nobody took the case, else due_at; overdue marked
  function paintDeadline(c, final) {
    const when = c.take_by || c.due_at;
    els.deadline.hidden = final || !when;
    if (final || !when) return;
    const parts = [];
    if (isOverdue(c)) parts.push(h('span', { testid: 'case-overdue', class: 'badge badge-overdue', text: `⚠ ${t('mediate.overdue')}` }), ' ');
    parts.push(t(c.take_by ? 'mediate.takeBy' : 'mediate.dueAt', { when: fmtWhen(when) }));
    if (c.extended_at) parts.push(' ', t('mediate.extended'));
    els.deadline.replaceChildren(...parts);
    els.deadline.classList.toggle('overdue', isOverdue(c));
  }

  // a party of a closed case is asked once how satisfied they are; their answer is theirs alone
  function paintFeedback(c) {
    const f = partyOf(c, S.me()) ? c.feedback : null;
    const asked = !!f && f.score == null;
    if (!asked || S.feedbackCase !== c.id) {
      S.feedbackCase = asked ? c.id : null;
      S.feedbackScore = 0;
    }
    els.feedbackBox.hidden = !asked;
    for (const b of els.feedbackBox.querySelectorAll('[data-score]')) {
      const on = Number(b.dataset.score) === S.feedbackScore;
      b.setAttribute('aria-pressed', String(on));
      b.classList.toggle('chosen', on);
      b.setAttribute('aria-label', t('mediate.feedbackStar', { n: b.dataset.score }));
    }
    const given = !!f && f.score != null;
    els.feedbackGiven.hidden = !given;
    els.feedbackGiven.textContent = given ? t('mediate.feedbackGiven', { n: f.score }) : '';
  }

  // one more party after filing: the filer or the case's mediator, while the case is open
  function paintAddParty(c, final) {
    const you = S.me();
    const adder = !final && (isFiler(c, you) || isMediatorOf(c, you) || isOpenerOf(c, you));
    const box = $('add-party-box');
    box.hidden = !adder;
    if (!adder) box.open = false;
    const last = adder && S.lastAdded && S.lastAdded.caseId === c.id ? S.lastAdded : null;
    const shown = $('new-party');
    shown.hidden = !last;
    if (!last) return;
    shown.dataset.code = last.join_code;
    shown.replaceChildren(t('mediate.addedCode', { name: last.name }), ' ',
      h('code', { class: 'code', text: last.join_code }), ' ',
      t(last.texted ? 'mediate.addedTexted' : 'mediate.addedPassOn'));
  }

  // a resident's case lives in this browser until they link a phone: say so, and offer it
  function paintKeep(c) {
    const you = S.me();
    const party = S.mode === 'resident' && !!partyOf(c, you);
    els.keepBox.hidden = !party;
    if (!party) return;
    $('keep-text').textContent = t(you.verified ? 'mediate.keepDone' : 'mediate.keepHint', { url: `${location.origin}/mediate` });
    $('keep-link').hidden = !!you.verified;
  }

  function paintTabs(c = S.book.get(S.openId), rooms = c ? roomsFor(c, S.me()) : []) {
    els.rooms.replaceChildren(...rooms.map((r) => {
      const st = S.chat.room(r);
      const selected = r === S.chat.current;
      return h('button', {
        testid: 'room-tab', class: `tab${selected ? ' active' : ''}${r === 'joint' ? '' : ' caucus'}`,
        data: { room: r }, attrs: { type: 'button', role: 'tab', 'aria-selected': String(selected) },
        on: { click: () => on.switchRoom(r) },
      }, roomLabel(c, r), st.unread && !selected ? h('span', { class: 'unread', text: String(st.unread) }) : null);
    }));
    els.roomHint.textContent = c && rooms.length ? roomHint(c, S.chat.current) : '';
  }

  function paintAgreement(c) {
    const ag = c.agreement;
    const settled = c.status === 'settled';
    els.agCurrent.hidden = settled;
    els.settlement.hidden = !settled;
    const signatures = ag ? ag.signatures || [] : [];
    if (!settled) {
      els.agText.textContent = ag ? ag.text : t('mediate.noAgreement');
      els.agText.classList.toggle('empty', !ag);
      els.agMeta.textContent = ag ? t('mediate.proposedAt', { when: fmtWhen(ag.proposed_at) }) : '';
      els.agMeta.hidden = !ag;
      const byParty = new Map(signatures.map((s) => [s.party_id, s]));
      els.signatures.replaceChildren(...(ag ? (c.parties || []).map((p) => {
        const s = byParty.get(p.id);
        return h('li', { class: s || p.signed ? 'signed' : 'unsigned' },
          h('span', { class: 'name', text: shownName(p.name, p.filer) }), t('punct.dash'),
          s || p.signed
            ? h('span', { text: s ? t('mediate.signedAt', { when: fmtWhen(s.signed_at) }) : t('mediate.signed') })
            : h('span', { class: 'muted', text: t('mediate.notSigned') }));
      }) : []));
    } else {
      $('st-text').textContent = ag ? ag.text : '';
      $('st-signers').replaceChildren(...signatures.map((s) => h('li', {},
        h('span', { class: 'name', text: nameIn(c, s.party_id, s.name) }), t('punct.dash'),
        h('span', { text: t('mediate.signedAt', { when: fmtWhen(s.signed_at) }) }),
        s.via === 'sms' ? h('span', { class: 'tag', text: t('mediate.viaSms') }) : null)));
      const last = signatures.map((s) => s.signed_at).sort().pop();
      $('st-time').textContent = fmtWhen(c.closed_at || last);
      $('st-sha').textContent = c.settled_sha256 || (ag && ag.sha256) || '';
      $('st-ref').textContent = `${c.ref_no} · ${c.settled_ref || ''}`; // what a resident reads out
    }

    const proposer = isMediatorOf(c, S.me()) && TALKING.has(c.status);
    els.proposeBox.hidden = !proposer;
    if (proposer) {
      const area = tid('agreement-text');
      if (S.lastProposeCase !== c.id) {
        S.lastProposeCase = c.id;
        if (!area.value && ag) area.value = ag.text; // revise from the current text
      }
      $('propose-label').textContent = t(ag ? 'mediate.reviseLabel' : 'mediate.agreementLabel');
      const othersJoined = (c.parties || []).length >= 2;
      tid('propose').disabled = !othersJoined;
      const hint = !othersJoined ? t('mediate.proposeWait') : signatures.length ? t('mediate.proposeClears') : '';
      els.proposeHint.textContent = hint;
      els.proposeHint.hidden = !hint;
    }
    const p = partyOf(c, S.me());
    const mustSign = !!(p && ag && c.status === 'agreement_proposed' && !p.signed);
    els.signBox.hidden = !mustSign;
    els.signBanner.hidden = !mustSign; // at the top: on a phone the Sign button is far below
    if (!mustSign) $('sign-confirm-box').hidden = true;
  }

  function messageItem(m) {
    const own = m.sender && m.sender.id === S.me().id;
    const role = (m.sender && m.sender.role) || 'resident';
    return h('li', { testid: 'message', class: `message${own ? ' mine' : ''} from-${role}`, data: { seq: m.seq } },
      h('div', { class: 'meta' },
        h('span', { class: 'sender', text: own ? t('mediate.you') : nameIn(S.book.get(m.case_id), m.sender && m.sender.id, m.sender && m.sender.name) }),
        role !== 'resident' ? h('span', { class: 'tag', text: t(`role.${role}`) }) : null,
        m.via === 'sms' ? h('span', { class: 'tag', text: t('mediate.viaSms') }) : null,
        h('time', { attrs: { datetime: m.sent_at, title: fmtWhen(m.sent_at) }, text: fmtTime(m.sent_at) })),
      h('p', { class: 'body', text: m.body })); // always as text
  }

  function pendingItem(o) {
    return h('li', { testid: 'message-pending', class: 'message mine pending' },
      h('div', { class: 'meta' }, h('span', { class: 'sender', text: t('mediate.you') }),
        h('span', { class: 'tag', text: t('mediate.sending') })),
      h('p', { class: 'body', text: o.body }));
  }

  function paintMessages(toBottom = false) {
    const box = els.messages;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    const st = S.chat.caseId ? S.chat.room(S.chat.current) : null;
    const list = st ? S.chat.messages(S.chat.current) : [];
    const pending = S.outbox.pending(S.chat.caseId, S.chat.current);
    box.replaceChildren(...list.map(messageItem), ...pending.map(pendingItem));
    const empty = list.length + pending.length === 0;
    els.messagesEmpty.hidden = !empty || !st || !st.followed;
    box.hidden = empty && !!st && st.followed; // say "no messages yet" instead of an empty box
    if (toBottom || atBottom || pending.length) box.scrollTop = box.scrollHeight;
  }

  return { renderCases, paintMyCasesButton, paintCase, paintTabs, paintMessages };
}
