"""The agreement document without I/O (issue 15): who may have it, what it holds, and the PDF itself."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pypdf
import pytest

from infra.errors import Conflict, Forbidden, Unavailable
from infra.identity import Account
from mediation import agreement_pdf, views
from mediation import rules as r
from tests.unit.test_mediation_rules import (
    AGENCY,
    FILER,
    MED,
    MED2,
    NOW,
    OTHER,
    THIRD,
    admin,
    agency,
    agreement,
    case,
    dispatcher,
    filer,
    mediator,
    mediator2,
    other,
    responder,
    third,
)


def settled() -> r.Case:
    return case("settled", agreement=agreement(signed=(FILER, OTHER)))


def test_the_participants_and_admins_read_a_settled_agreement_and_nobody_else():
    c = settled()
    for who in (filer, other, mediator, agency, admin):
        r.check_agreement_read(c, who)
    for who in (third, mediator2, responder, dispatcher, Account(THIRD, "clerk"), Account(AGENCY + "0", "agency")):
        with pytest.raises(Forbidden):
            r.check_agreement_read(c, who)


def test_before_settlement_it_is_a_conflict_but_outsiders_learn_nothing():
    for status, ag in (("in_mediation", None), ("agreement_proposed", agreement(signed=(FILER,))),
                       ("failed", agreement()), ("withdrawn", None)):
        c = case(status, agreement=ag)
        with pytest.raises(Conflict):
            r.check_agreement_read(c, filer)
        with pytest.raises(Conflict):
            r.check_agreement_read(c, admin)
        with pytest.raises(Forbidden):
            r.check_agreement_read(c, mediator2)


def doc() -> views.AgreementDoc:
    sigs = [views.DocSignature("Ann", "ws", NOW), views.DocSignature("Bo", "sms", NOW)]
    return views.agreement_doc(settled(), "甲方于周五前修好水管。", "ab" * 32, NOW, sigs)


def test_the_document_masks_every_phone_and_names_the_joined_parties():
    d = doc()
    assert [(p.name, p.phone, p.filer) for p in d.parties] == [("Ann", "+86*******0001", True),
                                                               ("Bo", "+86*******1234", False)]
    assert d.seal == "ABAB-ABAB" and d.mediator == "Med" and d.ref_no == "M-1001"
    assert MED not in repr(d) and MED2 not in repr(d)


def test_the_pdf_embeds_the_text_and_is_the_same_bytes_for_the_same_record():
    try:
        font = agreement_pdf.find_font()
    except Unavailable:
        pytest.skip("no CJK font installed (fonts-noto-cjk)")
    body = agreement_pdf.render(doc(), font)
    assert body == agreement_pdf.render(doc(), font)
    # the edge's cached copy: made once for the same record
    assert agreement_pdf.document(doc(), font) is agreement_pdf.document(doc(), font) and body == \
        agreement_pdf.document(doc(), font)
    text = re.sub(r"[\s\x00]+", "", "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages))
    assert "甲方于周五前修好水管。" in text and "ab" * 32 in text and "+86*******1234" in text


def test_a_font_that_is_not_there_says_which_key(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="pdf.font"):
        agreement_pdf.find_font(str(tmp_path / "none.ttf"))
    assert agreement_pdf.collection_member(tmp_path / "plain.ttf") == 0
