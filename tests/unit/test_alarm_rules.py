"""The console alarm's rules without I/O (dispatch/alarm.py): what rings, what an acknowledgement covers,
when supervisors are texted and what one text names; and the supervisor text itself (sms/texts.py)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch import alarm
from dispatch.alarm import Ack, Attention, Escalation
from infra.errors import Conflict
from infra.texts import IncidentText, Template
from sms.texts import as_text

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def ack(who: str = "d1", status: str = "escalated") -> Ack:
    return Ack(who, f"name of {who}", "2026-11-30T09:00:00Z", status)


@pytest.mark.parametrize("status,priority,why", [
    ("queued", 1, Attention.NEW_URGENT), ("offered", 1, Attention.NEW_URGENT),
    ("escalated", 1, Attention.ESCALATED), ("escalated", 3, Attention.ESCALATED),
    ("queued", 2, None), ("offered", 3, None),
    ("assigned", 1, None), ("en_route", 1, None), ("on_scene", 1, None),
    ("resolved", 1, None), ("cancelled", 1, None),
])
def test_what_asks_for_a_dispatcher(status, priority, why):
    assert alarm.attention(status, priority) == why
    assert alarm.rings(status, priority, []) == (why is not None)


def test_an_acknowledgement_covers_what_it_was_made_for():
    # any acknowledgement quiets a new P1
    assert not alarm.rings("offered", 1, [ack(status="offered")])
    # taken while it was still being offered: it rings again once it escalates (now someone must act)
    assert alarm.rings("escalated", 1, [ack(status="offered")])
    # taken while escalated: quiet, whatever it does next
    assert not alarm.rings("escalated", 1, [ack(status="escalated")])
    assert not alarm.rings("queued", 1, [ack(status="escalated")])


def test_acknowledging_is_idempotent_per_dispatcher_and_renewed_when_it_rings_anew():
    first = alarm.acknowledge("escalated", 2, [], ack("d1"))
    assert first == [ack("d1")]
    assert alarm.acknowledge("escalated", 2, first, ack("d1")) is None          # again: nothing changes
    both = alarm.acknowledge("escalated", 2, first, ack("d2"))                 # another dispatcher joins
    assert both is not None and [a.account_id for a in both] == ["d1", "d2"]
    # d1 took the new P1 while offered; it escalated: d1's second click is recorded (one entry each)
    early = [ack("d1", "offered")]
    again = alarm.acknowledge("escalated", 1, early, ack("d1", "escalated"))
    assert again == [ack("d1", "escalated")]
    # an open incident that does not ring may be taken too, once
    quiet = alarm.acknowledge("assigned", 3, [], ack("d1", "assigned"))
    assert quiet == [ack("d1", "assigned")]
    assert alarm.acknowledge("assigned", 3, quiet, ack("d1", "assigned")) is None


@pytest.mark.parametrize("status", ["resolved", "cancelled"])
def test_an_incident_that_is_over_cannot_be_taken(status):
    with pytest.raises(Conflict):
        alarm.acknowledge(status, 1, [], ack(status=status))


def test_acks_round_trip_through_their_stored_shape():
    a = ack("d9", "queued")
    assert Ack.of(a.as_data()) == a
    assert a.as_data() == {"id": "d9", "name": "name of d9", "at": "2026-11-30T09:00:00Z", "status": "queued"}


def esc(iid: str, waited_s: float, acks: tuple[Ack, ...] = (), alerted: bool = False,
        status: str = "escalated") -> Escalation:
    return Escalation(iid, status, acks, NOW - timedelta(seconds=waited_s), alerted)


def test_supervisors_are_due_after_the_delay_unless_taken_or_told():
    assert not alarm.supervisor_due(esc("a", 59), NOW, 60)
    assert alarm.supervisor_due(esc("a", 60), NOW, 60)
    assert not alarm.supervisor_due(esc("a", 600, acks=(ack(),)), NOW, 60)               # someone is on it
    assert alarm.supervisor_due(esc("a", 600, acks=(ack(status="offered"),)), NOW, 60)   # taken before it escalated
    assert not alarm.supervisor_due(esc("a", 600, alerted=True), NOW, 60)                # told once
    assert not alarm.supervisor_due(esc("a", 600, status="assigned"), NOW, 60)
    assert not alarm.supervisor_due(esc("a", 600), NOW, 0)                               # 0 disables


def test_one_text_names_every_unattended_escalation_once_one_is_due():
    waiting = [esc("young", 5), esc("old", 90), esc("taken", 300, acks=(ack(),)), esc("told", 400, alerted=True)]
    assert [e.incident_id for e in alarm.supervisor_batch(waiting, NOW, 60)] == ["old", "young"]
    assert alarm.supervisor_batch([esc("young", 5), esc("taken", 300, acks=(ack(),))], NOW, 60) == []
    assert alarm.supervisor_batch(waiting, NOW, 0) == []


def test_the_supervisor_text_names_the_incident_not_the_resident():
    body = as_text(Template(IncidentText.SUPERVISOR, {"ref": "H-4821", "category": "medical", "minutes": "2",
                                                      "more": "3", "public_url": "https://help.example.cn"}))
    assert "H-4821" in body and "medical" in body and "2 min" in body and "+3 more" in body
    assert "医疗急救" in body and "2分钟" in body and "另有3起" in body
    assert "https://help.example.cn/dispatch" in body
    alone = as_text(Template(IncidentText.SUPERVISOR, {"ref": "H-1", "category": "fire", "minutes": "1",
                                                       "more": "0", "public_url": ""}))
    assert "more" not in alone and "另有" not in alone and "火警" in alone
