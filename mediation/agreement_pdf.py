"""A settled agreement as a PDF, for judicial confirmation (司法确认) at the court (issue 15).

`render(doc, font)` turns a `views.AgreementDoc` into PDF bytes with fpdf2; no network, no event loop
(the edge runs `document`, the same kept for recent records, on EXECUTOR: a CJK font takes up to a
second of CPU to subset). The text is
set in one CJK font embedded as a subset, so Chinese comes out as written on any reader, and the
document is the same bytes for the same record (its dates are the settlement's, not the print's).

The font: `pdf.font` (config) names a TrueType/OpenType file or collection; empty, the first of
FONT_CANDIDATES that exists (Debian's fonts-noto-cjk first: fpdf2 embeds its CFF outlines). In a
collection (.ttc) the Simplified Chinese member is used. No font: `Unavailable`, saying what to
install, rather than a PDF whose Chinese is empty boxes.
"""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from fontTools.ttLib import TTCollection
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from infra.errors import Unavailable
from mediation.views import AgreementDoc

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",     # fonts-noto-cjk (.ci/run installs it)
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",                # fonts-wqy-zenhei
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",              # fonts-wqy-microhei
    "/usr/share/fonts/truetype/arphic/uming.ttc",                  # fonts-arphic-uming
)
FAMILY = "cjk"
VIA = {"ws": "web 网页", "sms": "SMS 短信"}
CATEGORY = {"neighbour": "邻里 neighbour", "family": "家庭 family", "labour": "劳动 labour",
            "property": "物业 property", "consumer": "消费 consumer", "other": "其他 other"}


def find_font(configured: str = "") -> Path:
    """The font file to embed: `configured` (pdf.font) if given, else the first candidate present."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise Unavailable(f"pdf.font {configured!r} is not a file: no agreement PDF can be made")
        return path
    for c in FONT_CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    raise Unavailable("no CJK font for the agreement PDF: install Debian's fonts-noto-cjk (or fonts-wqy-zenhei),"
                      " or set pdf.font to a TrueType/OpenType font with Chinese glyphs")


@functools.lru_cache(maxsize=8)
def collection_member(path: Path) -> int:
    """In a font collection, the index of the Simplified Chinese face (its name says SC); 0 otherwise."""
    if path.suffix.lower() not in (".ttc", ".otc"):
        return 0
    ttc = TTCollection(str(path), lazy=True)
    try:
        names = [f["name"].getDebugName(4) or "" for f in ttc.fonts]
    finally:
        ttc.close()
    return next((i for i, n in enumerate(names) if n.endswith(" SC")), 0)


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# one PDF at a time per node: subsetting a CJK font is ~1 s of CPU, and a burst of downloads must not take
# every core from the event loop; a settled record never changes, so its PDF is kept for the next download
EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agreement-pdf")
CACHED = 32


@functools.lru_cache(maxsize=CACHED)
def document(doc: AgreementDoc, font: Path) -> bytes:
    """`render`, kept for the same record (a purge that blanks names makes another `doc`)."""
    return render(doc, font)


def render(doc: AgreementDoc, font: Path) -> bytes:
    """The PDF of one settled agreement."""
    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_font(FAMILY, fname=str(font), collection_font_number=collection_member(font))
    pdf.set_title(f"调解协议书 Mediation agreement {doc.ref_no}")
    pdf.set_creator("helpline")
    pdf.set_lang("zh-CN")
    pdf.set_creation_date(doc.settled_at)
    pdf.add_page()
    width = pdf.epw

    def line(text: str, size: float = 11, gap: float = 1.5) -> None:
        pdf.set_font(FAMILY, size=size)
        pdf.multi_cell(width, size * 0.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(gap)

    def heading(text: str) -> None:
        pdf.ln(2)
        line(text, 13, 1)

    line("人民调解协议书 · Mediation agreement", 18, 4)
    line(f"案件编号 Case: {doc.ref_no}")
    line(f"纠纷类型 Category: {CATEGORY.get(doc.category, doc.category)}")
    line(f"达成时间 Settled: {_when(doc.settled_at)}")
    if doc.mediator:
        line(f"调解员 Mediator: {doc.mediator}")

    heading("当事人 Parties")
    for i, p in enumerate(doc.parties, 1):
        name = p.name or ("申请人 Applicant" if p.filer else "—")
        line(f"{i}. {name}" + (f"  电话 phone {p.phone}" if p.phone else ""))

    heading("协议内容 Agreement")
    line(doc.text, 12, 2)

    heading("签署 Signatures")
    for s in doc.signatures:
        line(f"{s.name or '—'}  签署于 signed {_when(s.signed_at)}  ({VIA.get(s.via, s.via)})")

    heading("封存 Seal")
    line("协议文本（UTF-8）的 SHA-256 · SHA-256 of the agreement text (UTF-8):", 10)
    line(doc.sha256, 10)
    line(f"参考号 Reference: {doc.ref_no} · {doc.seal}", 10)
    line("任何一份文本计算出相同的 SHA-256，即为各方签署的原文；改动一个字，数值即不同。"
         " A copy whose SHA-256 is the same is the text every party signed; any change gives another value.", 9)
    return bytes(pdf.output())
