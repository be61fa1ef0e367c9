"""Issue 15's pure rules without I/O: agency types, who refers which incident, the shape of `referred_to`,
what a referred-to agency may read and write, and the reporter's referral text."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch import lifecycle as lc
from infra import agency_types
from infra.errors import BadRequest, Conflict, Forbidden
from infra.identity import Account
from infra.texts import CaseText, Template
from mediation import rules as r
from mediation import views
from mediation.rules import Case, OtherParty, Party, Person, ReferredTo, Status
from sms import texts as sms

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RESIDENT = "11111111-1111-1111-1111-111111111111"
MED = "44444444-4444-4444-4444-444444444444"
COURT = "66666666-6666-6666-6666-666666666666"
POLICE = "77777777-7777-7777-7777-777777777777"
RESPONDER = "88888888-8888-8888-8888-888888888888"


def test_agency_types_parse_any_case_and_name_the_allowed_ones() -> None:
    assert agency_types.parse(" Womens_Federation ") is agency_types.AgencyType.WOMENS_FEDERATION
    assert [t.value for t in agency_types.AgencyType] == [
        "court", "police", "justice", "womens_federation", "civil_affairs", "security_committee", "party_service",
        "other"]
    with pytest.raises(BadRequest) as e:
        agency_types.parse("tribunal", "referred_to.agency_type")
    assert "referred_to.agency_type" in e.value.message and "party_service" in e.value.message


def incident(status: lc.Status = lc.Status.ESCALATED, responder: str | None = None) -> lc.Incident:
    return lc.Incident(id="i", status=status, reporter_id=RESIDENT, responder_id=responder, offer_attempts=0,
                       has_position=True)


@pytest.mark.parametrize("role, actor, allowed", [
    ("dispatcher", "d", True), ("admin", "a", True), ("responder", RESPONDER, True), ("responder", "other", False),
    ("resident", RESIDENT, False), ("mediator", MED, False)])
def test_who_refers_an_incident(role: str, actor: str, allowed: bool) -> None:
    inc = incident(lc.Status.ON_SCENE, RESPONDER)
    if allowed:
        assert lc.check_refer(inc, "dispute", actor, role, None) is False
    else:
        with pytest.raises(Forbidden):
            lc.check_refer(inc, "dispute", actor, role, None)


def test_only_an_open_dispute_is_referred_and_a_referred_one_answers_again() -> None:
    with pytest.raises(Conflict, match="dispute"):
        lc.check_refer(incident(), "medical", "d", "dispatcher", None)
    for final in lc.FINAL:
        with pytest.raises(Conflict, match=str(final)):
            lc.check_refer(incident(final), "dispute", "d", "dispatcher", None)
    # already referred: the same case answers (even though the incident is closed now)
    assert lc.check_refer(incident(lc.Status.RESOLVED), "dispute", "d", "dispatcher", "case-1") is True
    with pytest.raises(Forbidden):     # but not to someone who may not refer it
        lc.check_refer(incident(lc.Status.RESOLVED), "dispute", "x", "responder", "case-1")


def test_the_referral_fields_are_checked_with_the_field_named() -> None:
    staff = Account("d", "dispatcher")
    r.check_refer_open(staff, "neighbour", "wall", [OtherParty("Liu")])
    with pytest.raises(Forbidden):
        r.check_refer_open(Account(MED, "mediator"), "neighbour", "wall", [OtherParty("Liu")])
    for category, summary, others, field in [
            ("divorce", "wall", [OtherParty("Liu")], "category"),
            ("neighbour", " ", [OtherParty("Liu")], "summary"),
            ("neighbour", "wall", [], "other_parties"),
            ("neighbour", "wall", [OtherParty(f"P{i}") for i in range(r.MAX_OTHER_PARTIES)], "other_parties"),
            ("neighbour", "wall", [OtherParty("Liu"), OtherParty(" ")], "other_parties[1].name")]:
        with pytest.raises(BadRequest) as e:
            r.check_refer_open(staff, category, summary, others)
        assert field in e.value.message


def test_the_shape_of_referred_to() -> None:
    assert r.check_referred_to("referred", None, None, None) is None
    assert r.check_referred_to("referred", COURT, None, None) == (COURT, None, None)
    assert r.check_referred_to("referred", None, "COURT", " Riverside Court ") == (None, "court", "Riverside Court")
    bad = [("failed", COURT, None, None), ("referred", COURT, "court", None), ("referred", None, "court", None),
           ("referred", None, None, "X"), ("referred", None, "court", "  "), ("referred", None, "tribunal", "X"),
           ("referred", None, "court", "x" * (r.MAX_REFERRED_NAME + 1))]
    for args in bad:
        with pytest.raises(BadRequest) as e:
            r.check_referred_to(*args)
        assert "referred_to" in e.value.message, args


def referred_case(to: ReferredTo | None, invited: tuple[Person, ...] = ()) -> Case:
    return Case(id="c", ref_no="M-1", status=Status.REFERRED, category="neighbour", summary="s", filer_id=RESIDENT,
                created_at=NOW, updated_at=NOW, mediator=Person(MED, "Med"),
                parties=(Party(0, "Ann", RESIDENT),), agencies=invited, referred_to=to)


def test_a_referred_to_agency_reads_the_joint_room_only_and_writes_nowhere() -> None:
    court = Account(COURT, "agency")
    c = referred_case(ReferredTo(COURT, "court", "District Court"))
    assert c.role_of(court) == r.Role.REFERRED_TO
    r.check_read(c, court, r.parse_room("joint"))
    with pytest.raises(Forbidden):
        r.check_read(c, court, r.parse_room(f"caucus:{RESIDENT}"))
    with pytest.raises(Forbidden):
        r.check_write(c, court, r.parse_room("joint"), "hello")
    # another agency, or a body outside the system, gives nobody access
    with pytest.raises(Forbidden):
        r.check_read(c, Account(POLICE, "agency"), r.parse_room("joint"))
    outside = referred_case(ReferredTo(None, "court", "Court filing 118"))
    with pytest.raises(Forbidden):
        r.check_read(outside, court, r.parse_room("joint"))
    # invited and referred to: the invited agency's rights (the case's status decides on writing)
    both = referred_case(ReferredTo(COURT, "court", "District Court"), (Person(COURT, "District Court"),))
    assert both.role_of(court) == r.Role.AGENCY
    with pytest.raises(Conflict):
        r.check_write(both, court, r.parse_room("joint"), "hello")


def test_the_case_view_carries_the_incident_and_referred_to() -> None:
    c = referred_case(ReferredTo(None, "justice", "Justice office"))
    view = views.case_view(c, views.Viewer.STAFF)
    assert view["referred_to"] == {"agency_id": None, "agency_type": "justice", "name": "Justice office"}
    assert view["incident_id"] is None and view["incident_ref"] is None


def test_the_reporter_is_texted_the_case_and_their_code_in_both_languages() -> None:
    body = sms.render_case(Template(CaseText.REFERRED, {"ref": "M-1001", "incident": "H-2001", "code": "ABCD2345EF",
                                                        "public_url": "https://help.example"}))
    assert "M-1001" in body and "H-2001" in body and body.count("ABCD2345EF") == 2
    assert "调解" in body and "mediation case" in body and "https://help.example/mediate" in body
    assert len(body) <= sms.MAX_BODY
