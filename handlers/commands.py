"""Every WebSocket command, who may send it, its message and its handler: the one table.

Roles here only turn away accounts that can never send a command; which incident or
case an account may act on is decided by the domains' rules (dispatch/lifecycle.py,
dispatch/access.py, mediation/rules.py). docs/authorization.md is the matrix the tests check.
"""
from __future__ import annotations

from handlers import help as h
from handlers import intake
from handlers import mediation as med
from handlers import mediation_messages as mm
from handlers import messages as m
from handlers.registry import Command, command, table
from infra.identity import Role

RESIDENT, RESPONDER, DISPATCHER, MEDIATOR, AGENCY, ADMIN, CLERK = (
    Role.RESIDENT, Role.RESPONDER, Role.DISPATCHER, Role.MEDIATOR, Role.AGENCY, Role.ADMIN, Role.CLERK)
EVERYONE = frozenset(Role)
STAFF_DISPATCH = {DISPATCHER, ADMIN}
PARTICIPANTS = med.PARTICIPANTS

COMMANDS: dict[str, Command] = table(
    command("ping", m.Empty, EVERYONE, h.ping),
    # help and dispatch (contract §3)
    command("help.request", m.HelpRequest, {RESIDENT}, h.help_request),
    command("help.cancel", m.IncidentRef, {RESIDENT}, h.help_cancel),
    command("incident.note", m.AddNote, {RESIDENT}, h.incident_note),
    command("duty.start", m.DutyStart, {RESPONDER}, h.duty_start),
    command("duty.end", m.DutyEnd, {RESPONDER}, h.duty_end),
    command("location.update", m.LocationUpdate, {RESPONDER}, h.location_update),
    command("offer.accept", m.OfferRef, {RESPONDER}, h.offer_accept),
    command("offer.decline", m.OfferRef, {RESPONDER}, h.offer_decline),
    command("incident.progress", m.Progress, {RESPONDER}, h.incident_progress),
    command("queue.watch", m.QueueWatch, STAFF_DISPATCH, h.queue_watch),
    command("incident.assign", m.Assign, STAFF_DISPATCH, h.incident_assign),
    command("incident.close", m.Close, STAFF_DISPATCH, h.incident_close),
    command("incident.events", m.IncidentRef, {RESIDENT, RESPONDER, DISPATCHER, ADMIN}, h.incident_events),
    command("incident.locate", m.Locate, STAFF_DISPATCH, h.incident_locate),
    command("incident.ack", m.IncidentRef, STAFF_DISPATCH, h.incident_ack),
    # staff intake (contract §8)
    command("incident.create", intake.IncidentCreate, STAFF_DISPATCH, intake.incident_create),
    command("incident.link", intake.IncidentLink, STAFF_DISPATCH, intake.incident_link),
    command("places.search", intake.PlacesSearch, intake.PLACE_READERS, intake.places_search),
    # mediation (contract §3 and docs/mediation.md)
    command("case.open", mm.CaseOpen, {RESIDENT, MEDIATOR, CLERK}, med.case_open),
    command("case.join", mm.CaseJoin, {RESIDENT}, med.case_join),
    command("case.add_party", mm.CaseAddParty, {RESIDENT, MEDIATOR, CLERK}, med.case_add_party),
    command("cases.claim", m.Empty, {RESIDENT}, med.cases_claim),
    command("cases.watch", m.Empty, {MEDIATOR}, med.cases_watch),
    command("cases.mine", m.Empty, med.WITH_CASES, med.cases_mine),
    command("case.take", mm.CaseRef, {MEDIATOR}, med.case_take),
    command("case.invite", mm.CaseInvite, {MEDIATOR}, med.case_invite),
    command("chat.subscribe", mm.ChatSubscribe, PARTICIPANTS, med.chat_subscribe),
    command("chat.unsubscribe", mm.ChatUnsubscribe, PARTICIPANTS, med.chat_unsubscribe),
    command("chat.send", mm.ChatSend, PARTICIPANTS, med.chat_send),
    command("agreement.propose", mm.Propose, {MEDIATOR}, med.agreement_propose),
    command("agreement.sign", mm.Sign, {RESIDENT}, med.agreement_sign),
    command("case.close", mm.CaseClose, {MEDIATOR}, med.case_close),
    command("case.withdraw", mm.CaseRef, {RESIDENT}, med.case_withdraw),
    # cases followed up (issue 15, contract §10)
    command("case.events", mm.CaseRef, {MEDIATOR, ADMIN}, med.case_events),
    command("case.extend", mm.CaseExtend, {MEDIATOR}, med.case_extend),
    command("case.feedback", mm.CaseFeedback, {RESIDENT}, med.case_feedback),
)
