"""The wire shape of a case (contract §3), as each viewer may see it. Pure.

Who sees what:
    party (the filer too)   no phone numbers at all; the filer also sees the join codes
    the case's mediator     phone numbers in full, the join codes
    the opener              phone numbers in full and the join codes (they typed them in at the counter):
                            the staff member who opened a case for visitors
    other staff             phone numbers masked (+86******1234): agencies, mediators watching
    the agreement document  phone numbers masked, whoever asks for it (a paper goes further than a page):
                            `AgreementDoc`, made into a PDF by mediation/agreement_pdf.py

Deadlines (`due_at`, `take_by` while no mediator holds the case, `overdue`) are the same for everyone.
A satisfaction answer (`feedback`) is shown to the party who gave it and to nobody else: every other
viewer gets `feedback: null`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from infra.formats import iso, mask_phone, seal
from mediation.followup import is_overdue, take_applies
from mediation.rules import Case, Party, Signature


class Viewer(StrEnum):
    FILER = "filer"
    PARTY = "party"
    MEDIATOR = "mediator"     # the case's own mediator
    OPENER = "opener"         # the staff member who opened a case for visitors
    STAFF = "staff"           # any other staff member allowed to see the case


def viewer_of(case: Case, account_id: str, role: str) -> Viewer:
    if account_id == case.filer_id and case.opened_by is None:
        return Viewer.FILER
    if case.party(account_id) is not None:
        return Viewer.PARTY
    if role == "mediator" and case.mediator is not None and case.mediator.id == account_id:
        return Viewer.MEDIATOR
    if case.opened_by is not None and case.opened_by.id == account_id:
        return Viewer.OPENER
    return Viewer.STAFF


def _phone(p: Party, viewer: Viewer) -> dict[str, Any]:
    if viewer in (Viewer.MEDIATOR, Viewer.OPENER):
        return {"phone": p.phone}
    if viewer == Viewer.STAFF:
        return {"phone": mask_phone(p.phone)}
    return {}


def _signature(s: Signature) -> dict[str, Any]:
    return {"party_id": s.party_id, "name": s.name, "via": s.via, "signed_at": iso(s.signed_at)}


def _feedback(case: Case, viewer: Viewer, account_id: str | None) -> dict[str, Any] | None:
    """The viewer's own question and answer, if they are a party who was asked."""
    if viewer not in (Viewer.FILER, Viewer.PARTY) or account_id is None:
        return None
    f = next((f for f in case.feedback if f.party_id == account_id), None)
    if f is None:
        return None
    return {"asked_at": iso(f.asked_at), "score": f.score, "comment": f.comment,
            "answered_at": iso(f.answered_at)}


def case_view(case: Case, viewer: Viewer, account_id: str | None = None) -> dict[str, Any]:
    ag = case.agreement
    signed = ag.signed_by if ag is not None else frozenset()
    sees_codes = viewer in (Viewer.FILER, Viewer.MEDIATOR, Viewer.OPENER)
    opener = case.opened_by
    named = [p for p in case.parties if p.slot > 0]
    return {
        "id": case.id, "ref_no": case.ref_no, "status": str(case.status), "category": case.category,
        "summary": case.summary,
        "parties": [{"id": p.account_id, "name": p.name, "signed": p.account_id in signed, "via": p.via,
                     "filer": p.slot == 0, **_phone(p, viewer)} for p in case.joined],
        "invited": [{"name": p.name, "joined": p.joined, **_phone(p, viewer),
                     **({"join_code": p.join_code} if sees_codes else {})} for p in named],
        "mediator": {"id": case.mediator.id, "name": case.mediator.name} if case.mediator else None,
        "agencies": [{"id": a.id, "name": a.name} for a in case.agencies],
        "opened_by": {"id": opener.id, "name": opener.name, "role": opener.role} if opener else None,
        "agreement": None if ag is None else {
            "id": ag.id, "text": ag.text, "proposed_at": iso(ag.proposed_at), "sha256": ag.sha256,
            "signatures": [_signature(s) for s in ag.signatures]},
        "settled_sha256": case.settled_sha256,
        "settled_ref": seal(case.settled_sha256),
        "join_code": named[0].join_code if sees_codes and named else None,
        "outcome_note": case.outcome_note,
        "version": case.version,
        "due_at": iso(case.due_at),
        "take_by": iso(case.take_by) if take_applies(case) else None,
        "overdue": is_overdue(case),
        "extended_at": iso(case.extended_at),
        "feedback": _feedback(case, viewer, account_id),
        "created_at": iso(case.created_at), "updated_at": iso(case.updated_at),
        "closed_at": iso(case.closed_at),
    }


def view_for(case: Case, account_id: str, role: str) -> dict[str, Any]:
    return case_view(case, viewer_of(case, account_id, role), account_id)


# ------------------------------------------------------------------ the settled agreement as a document

@dataclass(frozen=True)
class DocParty:
    name: str                  # as the case holds it; "" once purged or never given
    phone: str | None          # masked (infra.formats.mask_phone), or None
    filer: bool


@dataclass(frozen=True)
class DocSignature:
    name: str
    via: str                   # ws | sms
    signed_at: datetime


@dataclass(frozen=True)
class AgreementDoc:
    """What the agreement PDF holds: the settlement record (the signed text, its SHA-256, who signed
    when) and the case around it. Built from the `settlements` row, not the live agreement: the
    document is the record that was sealed."""

    ref_no: str
    category: str
    text: str
    sha256: str
    seal: str
    settled_at: datetime
    mediator: str
    parties: tuple[DocParty, ...]
    signatures: tuple[DocSignature, ...]


def agreement_doc(case: Case, text: str, sha256: str, settled_at: datetime,
                  signatures: list[DocSignature]) -> AgreementDoc:
    """The document of a settled case, from its settlement record (text, hash, signatures, time)."""
    return AgreementDoc(
        ref_no=case.ref_no, category=case.category, text=text, sha256=sha256, seal=seal(sha256) or "",
        settled_at=settled_at, mediator=case.mediator.name if case.mediator else "",
        parties=tuple(DocParty(p.name, mask_phone(p.phone), p.slot == 0 and case.opened_by is None)
                      for p in case.joined),
        signatures=tuple(signatures))
