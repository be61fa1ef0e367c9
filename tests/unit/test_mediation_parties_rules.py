"""Issue 19 rules without I/O: who may name a party after filing, which party a verified phone may
take, and the short reference residents read instead of a SHA-256."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infra.errors import BadRequest, Conflict, Forbidden
from infra.formats import seal
from infra.identity import Account
from mediation import rules as r
from mediation.rules import Case, Party, Person, Status

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FILER, OTHER, MED, STRANGER = ("11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222",
                               "44444444-4444-4444-4444-444444444444", "77777777-7777-7777-7777-777777777777")
filer, other, stranger = Account(FILER, "resident"), Account(OTHER, "resident"), Account(STRANGER, "resident")
mediator = Account(MED, "mediator")


def case(status: Status = Status.IN_MEDIATION, named: int = 2, joined: bool = True) -> Case:
    parties = [Party(0, "", FILER)] + [
        Party(i, f"P{i}", OTHER if joined and i == 1 else None, f"+861390000000{i}", f"CODE{i:06d}")
        for i in range(1, named + 1)]
    return Case(id="c", ref_no="M-1", status=status, category="other", summary="s", filer_id=FILER,
                created_at=NOW, updated_at=NOW, mediator=Person(MED, "Ma"), parties=tuple(parties))


def test_the_filer_and_the_case_mediator_add_parties_to_an_open_case() -> None:
    for who in (filer, mediator):
        r.check_add_party(case(), who, "Cy")
        r.check_add_party(case(Status.FILED), who, "Cy")
    for who in (other, stranger, Account(MED, "agency"), Account("88888888-8888-8888-8888-888888888888", "mediator")):
        with pytest.raises(Forbidden):
            r.check_add_party(case(), who, "Cy")
    for final in r.FINAL:
        with pytest.raises(Conflict):
            r.check_add_party(case(final), filer, "Cy")
    with pytest.raises(BadRequest):
        r.check_add_party(case(), filer, "  ")
    with pytest.raises(Conflict, match="at most 10"):
        r.check_add_party(case(named=r.MAX_OTHER_PARTIES), filer, "Cy")


def test_a_verified_phone_takes_only_a_party_nobody_joined() -> None:
    c = case(named=2)
    unjoined, joined = c.parties[2], c.parties[1]
    assert r.may_claim(c, unjoined, stranger)
    assert not r.may_claim(c, joined, stranger)                       # never moved to another account
    assert not r.may_claim(c, c.parties[0], stranger)                 # nor the filer's own slot
    assert not r.may_claim(c, unjoined, other)                        # already a party of this case
    assert not r.may_claim(case(Status.SETTLED, 2), unjoined, stranger)
    assert not r.may_claim(c, unjoined, mediator)


def test_the_short_reference_of_a_signed_text() -> None:
    sha = "5290967" + "a" * 57
    assert seal(sha) == "5290-967A" and seal(None) is None and seal("") is None
