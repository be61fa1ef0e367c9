"""Mediation rules and views without I/O: lifecycle, room access, agreements, privacy."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from infra import formats
from infra.errors import BadRequest, Conflict, Forbidden, NotFound
from infra.identity import Account
from mediation import rules as r
from mediation import views
from mediation.rules import Agreement, Case, Party, Person, Signature, Status
from sms import grammar as sms

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FILER = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
THIRD = "33333333-3333-3333-3333-333333333333"
MED = "44444444-4444-4444-4444-444444444444"
MED2 = "55555555-5555-5555-5555-555555555555"
AGENCY = "66666666-6666-6666-6666-666666666666"

filer, other, third = Account(FILER, "resident"), Account(OTHER, "resident"), Account(THIRD, "resident")
mediator, mediator2, agency = Account(MED, "mediator"), Account(MED2, "mediator"), Account(AGENCY, "agency")
responder, dispatcher, admin = Account(MED, "responder"), Account(MED, "dispatcher"), Account(MED, "admin")


def case(
    status: str = "in_mediation",
    *,
    joined: bool = True,
    agreement: Agreement | None = None,
    with_mediator: bool = True,
) -> Case:
    parties = (
        Party(0, "Ann", FILER, "+8613800000001"),
        Party(1, "Bo", OTHER if joined else None, "+8613812341234", "ABCD2345"),
        Party(2, "Cy", None, None, "EFGH6789"),
    )
    return Case(
        id="c1",
        ref_no="M-1001",
        status=Status(status),
        category="neighbour",
        summary="noise",
        filer_id=FILER,
        created_at=NOW,
        updated_at=NOW,
        mediator=Person(MED, "Med") if with_mediator else None,
        parties=parties,
        agencies=(Person(AGENCY, "Court"),),
        agreement=agreement,
    )


def agreement(aid: str = "a1", signed: tuple[str, ...] = ()) -> Agreement:
    return Agreement(
        aid, "text", r.sha256_text("text"), NOW, "123456", tuple(Signature(p, "x", "ws", NOW) for p in signed)
    )


# ------------------------------------------------------------------ rooms


def test_room_names_parse_or_are_bad_requests():
    assert r.parse_room("joint") == r.Room("joint")
    assert r.parse_room("caucus:" + OTHER.upper()) == r.Room("caucus:" + OTHER, OTHER)
    for bad in ("", "Joint", "lobby", "caucus:", "caucus:abc", "caucus:" + OTHER + "x", "joint "):
        with pytest.raises(BadRequest):
            r.parse_room(bad)


def test_joint_is_for_every_participant_and_nobody_else():
    c = case()
    for who in (filer, other, mediator, agency):
        r.check_read(c, who, r.Room("joint"))
    for who in (third, mediator2, responder, dispatcher, admin, Account(AGENCY + "0", "agency")):
        with pytest.raises(Forbidden):
            r.check_read(c, who, r.Room("joint"))


def test_caucus_only_for_the_case_mediator_and_that_party():
    c, room = case(), r.parse_room("caucus:" + OTHER)
    r.check_read(c, other, room)
    r.check_read(c, mediator, room)
    for who in (
        filer,
        agency,
        mediator2,
        third,
        responder,
        dispatcher,
        admin,
        Account(OTHER, "agency"),
        Account(OTHER, "mediator"),
    ):  # the id alone opens nothing
        with pytest.raises(Forbidden):
            r.check_read(c, who, room)


def test_caucus_of_a_non_party():
    c = case()
    with pytest.raises(NotFound):
        r.check_read(c, mediator, r.parse_room("caucus:" + THIRD))
    with pytest.raises(Forbidden):  # a party learns nothing about who else exists
        r.check_read(c, filer, r.parse_room("caucus:" + THIRD))


def test_writing_needs_an_open_case_and_a_real_body():
    r.check_write(case(), filer, r.Room("joint"), "hi")
    with pytest.raises(Conflict):
        r.check_write(case("settled"), filer, r.Room("joint"), "hi")
    for body in ("", "   ", "x" * 4001):
        with pytest.raises(BadRequest):
            r.check_write(case(), filer, r.Room("joint"), body)
    r.check_body("x" * 4000)


# ------------------------------------------------------------------ lifecycle


def test_open_checks():
    r.check_open(filer, "neighbour", "noise", [r.OtherParty("Bo")])
    with pytest.raises(Forbidden):
        r.check_open(mediator, "neighbour", "noise", [r.OtherParty("Bo")])
    for cat, summary, others in (
        ("fight", "x", [r.OtherParty("Bo")]),
        ("family", " ", [r.OtherParty("Bo")]),
        ("family", "x", []),
        ("family", "x", [r.OtherParty(" ")]),
        ("family", "x", [r.OtherParty("a")] * 11),
    ):
        with pytest.raises(BadRequest):
            r.check_open(filer, cat, summary, others)


def test_join():
    c = case("filed", joined=False, with_mediator=False)
    slot = c.parties[1]
    assert r.check_join(c, slot, other) is False
    with pytest.raises(Conflict):  # the filer cannot take another slot
        r.check_join(c, slot, filer)
    with pytest.raises(Forbidden):
        r.check_join(c, slot, mediator)
    joined = case("filed")
    assert r.check_join(joined, joined.parties[1], other) is True  # repeated join: no change
    with pytest.raises(Conflict):
        r.check_join(joined, joined.parties[1], third)  # code already used
    with pytest.raises(Conflict):
        r.check_join(case("withdrawn", joined=False), c.parties[1], other)


def test_take_once():
    c = case("filed", with_mediator=False)
    assert r.take(c, mediator) == Status.IN_MEDIATION
    with pytest.raises(Forbidden):
        r.take(c, agency)
    taken = replace(c, status=Status.IN_MEDIATION, mediator=Person(MED, "Med"))
    assert r.take(taken, mediator) is None
    with pytest.raises(Conflict):
        r.take(taken, mediator2)
    with pytest.raises(Conflict):
        r.take(replace(c, status=Status.WITHDRAWN), mediator)


def test_invite_agency():
    c = case()
    court2 = Person(THIRD, "Police")
    assert r.check_invite(c, mediator, court2, "agency") is False
    assert r.check_invite(c, mediator, Person(AGENCY, "Court"), "agency") is True
    with pytest.raises(Forbidden):
        r.check_invite(c, mediator2, court2, "agency")
    with pytest.raises(BadRequest):
        r.check_invite(c, mediator, court2, "resident")
    with pytest.raises(NotFound):
        r.check_invite(c, mediator, court2, None)


def test_propose_needs_the_mediator_and_two_parties():
    p = r.propose(case(), mediator, "we agree")
    assert p.status == Status.AGREEMENT_PROPOSED
    assert p.sha256 == hashlib.sha256(b"we agree").hexdigest()
    with pytest.raises(Forbidden):
        r.propose(case(), mediator2, "x")
    with pytest.raises(Forbidden):
        r.propose(case(), filer, "x")
    with pytest.raises(Conflict):
        r.propose(case(joined=False), mediator, "x")
    with pytest.raises(Conflict):
        r.propose(case("settled"), mediator, "x")
    with pytest.raises(BadRequest):
        r.propose(case(), mediator, "  ")


def test_signing_to_settlement():
    c = case("agreement_proposed", agreement=agreement())
    d = r.sign(c, filer, "a1")
    assert not d.already and not d.settles
    c = replace(c, agreement=agreement(signed=(FILER,)))
    assert r.sign(c, filer, None).already
    d = r.sign(c, other, None)
    assert d.settles and d.sha256 == r.sha256_text("text")
    with pytest.raises(Forbidden):
        r.sign(c, mediator, None)
    with pytest.raises(Forbidden):
        r.sign(c, third, None)


def test_a_new_proposal_clears_signatures_and_an_old_one_is_refused():
    old = case("agreement_proposed", agreement=agreement("a1", signed=(FILER,)))
    new = replace(old, agreement=agreement("a2"))  # what the case looks like after a new proposal
    assert not r.sign(new, other, "a2").settles  # the filer's signature was for a1
    with pytest.raises(Conflict):
        r.sign(new, filer, "a1")
    with pytest.raises(Conflict):
        r.sign(case("in_mediation"), filer, None)


def test_close_and_withdraw():
    assert r.close(case(), mediator, "failed") == Status.FAILED
    assert r.close(case("agreement_proposed"), mediator, "referred") == Status.REFERRED
    assert r.close(case("settled"), mediator, "settled") is None
    with pytest.raises(Conflict):
        r.close(case(), mediator, "settled")
    with pytest.raises(BadRequest):
        r.close(case(), mediator, "won")
    with pytest.raises(Forbidden):
        r.close(case(), mediator2, "failed")
    with pytest.raises(Conflict):
        r.close(case("settled"), mediator, "failed")
    assert r.withdraw(case("filed"), filer) == Status.WITHDRAWN
    assert r.withdraw(case("agreement_proposed"), filer) == Status.WITHDRAWN
    assert r.withdraw(case("withdrawn"), filer) is None
    with pytest.raises(Forbidden):
        r.withdraw(case(), other)
    with pytest.raises(Conflict):
        r.withdraw(case("settled"), filer)


# ------------------------------------------------------------------ views


def test_phone_masking():
    assert formats.mask_phone("+8613812341234") == "+86*******1234"
    assert formats.mask_phone(None) is None
    assert formats.mask_phone("+12") == "***"


def test_who_sees_phones_and_codes():
    c = case()
    as_filer = views.view_for(c, FILER, "resident")
    as_party = views.view_for(c, OTHER, "resident")
    as_med = views.view_for(c, MED, "mediator")
    as_staff = views.view_for(c, MED2, "mediator")
    as_agency = views.view_for(c, AGENCY, "agency")
    for v in (as_filer, as_party):
        assert all("phone" not in p for p in v["parties"] + v["invited"])
    assert as_filer["join_code"] == "ABCD2345"
    assert [i["join_code"] for i in as_filer["invited"]] == ["ABCD2345", "EFGH6789"]
    assert as_party["join_code"] is None and all("join_code" not in i for i in as_party["invited"])
    assert [p["phone"] for p in as_med["parties"]] == ["+8613800000001", "+8613812341234"]
    for v in (as_staff, as_agency):
        assert [p["phone"] for p in v["parties"]] == ["+86*******0001", "+86*******1234"]
        assert v["join_code"] is None
    assert [p["id"] for p in as_filer["parties"]] == [FILER, OTHER]  # joined parties only
    assert [i["joined"] for i in as_filer["invited"]] == [True, False]


def test_signed_flags_follow_the_current_agreement():
    c = case("agreement_proposed", agreement=agreement(signed=(OTHER,)))
    v = views.view_for(c, FILER, "resident")
    assert [(p["id"], p["signed"]) for p in v["parties"]] == [(FILER, False), (OTHER, True)]
    assert v["agreement"]["sha256"] == r.sha256_text("text") and "sign_code" not in v["agreement"]


# ------------------------------------------------------------------ SMS texts


def captured(rx: re.Pattern[str], text: str) -> str:
    m = rx.match(text)
    assert m is not None, f"{text!r} does not parse"
    return m.group(1)


def test_sms_commands_parse():
    assert captured(sms.JOIN, "ABCD2345") == "ABCD2345"
    assert captured(sms.JOIN, "join abcd2345") == "abcd2345"
    assert captured(sms.JOIN, "加入 ABCD2345") == "ABCD2345"
    assert captured(sms.SIGN, "SIGN 123456") == "123456"
    assert captured(sms.SIGN, "签字 123456") == "123456"
    assert sms.SIGN.match("sign 12345") is None
    assert sms.JOIN.match("I think we should talk about the wall") is None
