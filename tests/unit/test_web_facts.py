"""Facts the pages hold as constants agree with the server's enums (web/static/js/status.js)."""
from __future__ import annotations

import re
from pathlib import Path

from infra.agency_types import AgencyType

STATUS_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "status.js"


def js_list(name: str) -> list[str]:
    m = re.search(rf"export const {name} = \[(.*?)\];", STATUS_JS.read_text(encoding="utf-8"), re.S)
    assert m, f"{name} not in status.js"
    return re.findall(r"'([a-z_]+)'", m.group(1))


def test_the_pages_know_every_kind_of_agency_in_the_servers_order():
    assert js_list("AGENCY_TYPES") == [str(t) for t in AgencyType]
