"""The settled agreement as a PDF (issue 15): GET /api/cases/{id}/agreement.pdf on a real node, its text read
back with pypdf: the Chinese agreement text, the parties (phones masked), the signatures and the SHA-256."""
from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import uuid
from typing import Any

import asyncpg
import pypdf
import pytest

from infra.formats import mask_phone
from testkit.client import Client, http

TEXT = "甲方张三于本周五前修好漏水的水管，乙方李四承担材料费三百元。双方不再追究。"
FILER_PHONE, OTHER_PHONE = "+8613800000001", "+8613812341234"


async def signed_in(hl: Any, role: str, name: str, phone: str | None = None) -> tuple[Client, str]:
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    await hl.add_user(username, role, name=name, phone=phone)
    token = await hl.login(username)
    return await hl.connect(token), token


def pdf_texts(body: bytes) -> list[str]:
    """The PDF's text as each reader at hand extracts it (pypdf always; poppler's pdftotext when
    installed), white space and NULs removed: pypdf reads the two-byte glyph codes of the embedded CID
    font back with a NUL between characters, and readers space CJK glyphs out as they please."""
    reader = pypdf.PdfReader(io.BytesIO(body))
    texts = ["".join(page.extract_text() or "" for page in reader.pages)]
    if shutil.which("pdftotext"):
        texts.append(subprocess.run(["pdftotext", "-", "-"], input=body, capture_output=True, check=True,
                                    timeout=60).stdout.decode())
    return [re.sub(r"[\s\x00]+", "", t) for t in texts]


def squeeze(s: str) -> str:
    return re.sub(r"\s+", "", s)


async def settled_case(hl: Any) -> dict[str, Any]:
    filer, ft = await signed_in(hl, "resident", "张三", FILER_PHONE)
    case = (await filer.ok("case.open", category="neighbour", summary="楼上漏水",
                           other_parties=[{"name": "李四", "phone": OTHER_PHONE}]))["case"]
    other, ot = await signed_in(hl, "resident", "李四", OTHER_PHONE)
    await other.ok("case.join", join_code=case["join_code"])
    med, mt = await signed_in(hl, "mediator", "调解员王")
    await med.ok("case.take", case_id=case["id"])
    agency, at = await signed_in(hl, "agency", "人民法庭")
    await med.ok("case.invite", case_id=case["id"], account_id=agency.account_id)
    await med.ok("agreement.propose", case_id=case["id"], text=TEXT)
    await filer.ok("agreement.sign", case_id=case["id"])
    done = (await other.ok("agreement.sign", case_id=case["id"]))["case"]
    assert done["status"] == "settled"
    return {"case": done, "tokens": {"filer": ft, "other": ot, "mediator": mt, "agency": at}}


def url(hl: Any, case_id: str) -> str:
    return f"{hl.base}/api/cases/{case_id}/agreement.pdf"


async def test_the_pdf_holds_the_chinese_text_the_parties_the_signatures_and_the_hash(hl):
    s = await settled_case(hl)
    case = s["case"]
    sha = hashlib.sha256(TEXT.encode()).hexdigest()
    assert case["settled_sha256"] == sha
    for who, token in s["tokens"].items():
        status, body = await http("GET", url(hl, case["id"]), token=token)
        assert status == 200, (who, status, body)
        assert isinstance(body, bytes) and body.startswith(b"%PDF-"), who
        signed = [sig["signed_at"][:19].replace("T", "") for sig in case["agreement"]["signatures"]]
        assert len(signed) == 2
        for text in pdf_texts(body):
            assert squeeze(TEXT) in text
            assert sha in text and case["ref_no"] in text and case["settled_ref"] in text
            # both parties by name, their phones only masked; both signatures with their time
            assert "张三" in text and "李四" in text
            assert f"{mask_phone(FILER_PHONE)}" in text and f"{mask_phone(OTHER_PHONE)}" in text
            assert FILER_PHONE not in text and OTHER_PHONE not in text
            assert all(t in text for t in signed)
            assert "调解员王" in text
    # the font is embedded (as a subset): the Chinese shows on a reader without CJK fonts
    reader = pypdf.PdfReader(io.BytesIO(body))
    resources: Any = reader.pages[0]["/Resources"]
    fonts = [f.get_object() for f in resources["/Font"].values()]
    descendants = [d.get_object() for f in fonts for d in f.get("/DescendantFonts", [])]
    assert descendants and all(
        any(k in d["/FontDescriptor"].get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        for d in descendants)


async def test_who_gets_it_and_what_else_is_refused(hl):
    s = await settled_case(hl)
    cid = s["case"]["id"]
    _, admin = await signed_in(hl, "admin", "Admin")
    _, med2 = await signed_in(hl, "mediator", "Other mediator")
    _, dispatcher = await signed_in(hl, "dispatcher", "Dispatcher")
    stranger = await hl.device_token()
    assert (await http("GET", url(hl, cid), token=admin))[0] == 200
    for token in (med2, dispatcher, stranger):
        status, body = await http("GET", url(hl, cid), token=token)
        assert status == 403 and body["error"]["code"] == "forbidden"
    assert (await http("GET", url(hl, cid)))[0] == 401
    # unknown case, not a case id at all
    status, body = await http("GET", url(hl, str(uuid.uuid4())), token=admin)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert (await http("GET", url(hl, "not-a-case"), token=admin))[0] == 404


async def test_a_case_not_settled_is_a_conflict_and_a_party_outside_is_refused_first(hl):
    filer, ft = await signed_in(hl, "resident", "Ann")
    case = (await filer.ok("case.open", category="family", summary="A flat",
                           other_parties=[{"name": "Bo"}]))["case"]
    status, body = await http("GET", url(hl, case["id"]), token=ft)
    assert status == 409 and body["error"]["code"] == "conflict" and "filed" in body["error"]["message"]
    stranger = await hl.device_token()
    assert (await http("GET", url(hl, case["id"]), token=stranger))[0] == 403


@pytest.mark.config(pdf_font="/nonexistent/font.ttf")
async def test_a_missing_font_is_a_clear_503(hl):
    s = await settled_case(hl)
    status, body = await http("GET", url(hl, s["case"]["id"]), token=s["tokens"]["filer"])
    assert status == 503 and "pdf.font" in body["error"]["message"]


async def test_staff_reading_the_agreement_is_audited(hl):
    s = await settled_case(hl)
    cid = s["case"]["id"]
    for who in ("mediator", "agency", "filer"):
        assert (await http("GET", url(hl, cid), token=s["tokens"][who]))[0] == 200
    conn = await asyncpg.connect(hl.database_url)
    try:
        rows = await conn.fetch("SELECT actor_role FROM audit_log WHERE action = 'read' AND subject_type = 'agreement'"
                                " AND subject_id = $1 ORDER BY id", cid)
    finally:
        await conn.close()
    assert [r["actor_role"] for r in rows] == ["mediator", "agency"]
