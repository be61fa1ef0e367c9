"""Cases opened for visitors at the counter (issue 13), as pure rules and views: who may open them,
what a valid list of parties is, who adds to them and sees what."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infra.errors import BadRequest, Conflict, Forbidden
from infra.identity import Account
from mediation import rules as r
from mediation import views
from mediation.rules import Case, Opener, OtherParty, Party, Person, Status

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CLERK = Account("k1", "clerk", "Qian")
MED = Account("m1", "mediator", "Sun")
TWO = [OtherParty("Wang"), OtherParty("Zhao")]


def case(status: str = "filed", mediator: Person | None = None, opener: Account = CLERK) -> Case:
    return Case(id="c1", ref_no="M-1", status=Status(status), category="neighbour", summary="noise",
                filer_id=opener.id, created_at=NOW, updated_at=NOW, mediator=mediator,
                opened_by=Opener(opener.id, opener.name, opener.role),
                parties=(Party(1, "Wang", phone="+8613911110001", join_code="AAAAAAAAAA"),
                         Party(2, "Zhao", join_code="BBBBBBBBBB")))


@pytest.mark.parametrize("role", ["resident", "responder", "dispatcher", "agency", "admin"])
def test_only_mediators_and_clerks_open_cases_for_visitors(role: str) -> None:
    with pytest.raises(Forbidden):
        r.check_open_for_visitors(Account("x", role), "neighbour", "noise", TWO)
    r.check_open_for_visitors(CLERK, "neighbour", "noise", TWO)
    r.check_open_for_visitors(MED, "neighbour", "noise", TWO)


def test_a_dispute_has_two_to_ten_named_people() -> None:
    for parties in ([], [OtherParty("Alone")], [OtherParty(str(i)) for i in range(11)]):
        with pytest.raises(BadRequest, match="at least two"):
            r.check_open_for_visitors(CLERK, "neighbour", "noise", parties)
    with pytest.raises(BadRequest, match=r"parties\[1\]\.name"):
        r.check_open_for_visitors(CLERK, "neighbour", "noise", [OtherParty("A"), OtherParty("  ")])
    with pytest.raises(BadRequest, match="category"):
        r.check_open_for_visitors(CLERK, "noise", "noise", TWO)
    with pytest.raises(BadRequest, match="summary"):
        r.check_open_for_visitors(CLERK, "neighbour", " ", TWO)
    r.check_open_for_visitors(CLERK, "neighbour", "noise", [OtherParty(str(i)) for i in range(10)])


def test_one_number_stands_for_one_person() -> None:
    r.check_distinct_phones([OtherParty("A", "+8613911110001"), OtherParty("B"), OtherParty("C")])
    with pytest.raises(BadRequest, match=r"parties\[2\]\.phone: the same number as parties\[0\]"):
        r.check_distinct_phones([OtherParty("A", "+8613911110001"), OtherParty("B"),
                                 OtherParty("C", "+8613911110001")])


def test_the_opener_adds_parties_until_a_mediator_takes_the_case() -> None:
    r.check_add_party(case(), CLERK, "Lu")
    assert r.is_opener(case(), CLERK)
    taken = case("in_mediation", mediator=Person("m2", "Zhou"))
    assert not r.is_opener(taken, CLERK)
    with pytest.raises(Forbidden):
        r.check_add_party(taken, CLERK, "Lu")
    r.check_add_party(taken, Account("m2", "mediator"), "Lu")          # the case's mediator still may
    with pytest.raises(Forbidden):
        r.check_add_party(case(), Account("k2", "clerk"), "Lu")        # another clerk
    with pytest.raises(Conflict):
        r.check_add_party(case("withdrawn"), CLERK, "Lu")
    # a mediator who opened it adds until someone (they or another) takes it, then as its mediator only
    assert r.is_opener(case(opener=MED), MED)
    with pytest.raises(Forbidden):
        r.check_add_party(case("in_mediation", mediator=Person("m2", "Zhou"), opener=MED), MED, "Lu")


def test_the_staff_opener_is_no_filer_and_no_participant() -> None:
    c = case()
    with pytest.raises(Forbidden):
        r.withdraw(c, CLERK)
    assert c.role_of(CLERK) is None
    with pytest.raises(Forbidden):
        r.check_read(c, CLERK, r.Room("joint"))


def test_the_opener_sees_phones_and_codes_other_staff_masked() -> None:
    c = case()
    mine = views.view_for(c, CLERK.id, CLERK.role)
    assert mine["opened_by"] == {"id": "k1", "name": "Qian", "role": "clerk"}
    assert [(i["phone"], i["join_code"]) for i in mine["invited"]] == [
        ("+8613911110001", "AAAAAAAAAA"), (None, "BBBBBBBBBB")]
    assert mine["join_code"] == "AAAAAAAAAA" and mine["parties"] == []
    other = views.view_for(c, "m9", "mediator")
    assert other["invited"][0]["phone"] != "+8613911110001" and "join_code" not in other["invited"][0]
    assert other["opened_by"]["role"] == "clerk"
    # a mediator who opened it and took it sees it as its mediator
    took = case("in_mediation", mediator=Person(MED.id, MED.name), opener=MED)
    assert views.viewer_of(took, MED.id, MED.role) == views.Viewer.MEDIATOR
    # a case a resident filed has no opener
    filed = Case(id="c2", ref_no="M-2", status=Status.FILED, category="family", summary="s", filer_id="res",
                 created_at=NOW, updated_at=NOW, parties=(Party(0, "Ann", account_id="res"),))
    assert views.view_for(filed, "res", "resident")["opened_by"] is None
    assert views.viewer_of(filed, "res", "resident") == views.Viewer.FILER


def test_the_counter_invitation_carries_no_ones_words() -> None:
    from infra.texts import CaseText, Template
    from sms import texts as sms

    t = sms.render_case(Template(CaseText.VISIT, {"ref": "M-7", "category": "neighbour", "code": "J3WY7FB9HT",
                                                  "public_url": "https://h.example"}))
    assert t.startswith("Helpline mediation M-7") and t.count("J3WY7FB9HT") == 2
    assert "mediation centre" in t and "调解中心" in t and "https://h.example/mediate" in t and "STOP" in t
