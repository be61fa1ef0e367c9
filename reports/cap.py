"""An exported incident as a CAP 1.2 alert (OASIS Common Alerting Protocol), for public-warning systems.

Pure: the export item (reports/export.py, no personal data) in, the XML out. Where: the incident's grid
only (its code as a geocode, its name as the area), never its position. The alert states what happened
(`urgency` Past, `certainty` Observed for a resolved incident); `parameter`s carry helpline's figures.
tests/integration/test_export.py validates the output against the OASIS schema (tests/vendor).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MEDIA_TYPE = "application/cap+xml"
# helpline's categories to CAP's <category> (anything else: Other)
CATEGORY = {"medical": "Health", "fire": "Fire", "police": "Security", "dispute": "Safety"}
# the priority (dispatch.categories) to CAP's <severity>
SEVERITY = {1: "Severe", 2: "Moderate", 3: "Minor"}


def _sent(t: datetime, tz: ZoneInfo) -> str:
    """CAP's dateTime: seconds, an explicit offset (never `Z`)."""
    s = t.astimezone(tz).replace(microsecond=0).isoformat()
    return s if not s.endswith("Z") else s[:-1] + "+00:00"


def alert(item: dict[str, Any], *, sender: str, tz: ZoneInfo, grid_name: str | None) -> bytes:
    """The CAP 1.2 <alert> of one exported incident (see export.item)."""
    ET.register_namespace("", NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    root = ET.Element(f"{{{NS}}}alert")
    sub(root, "identifier", f"helpline-{item['ref_no']}")
    sub(root, "sender", sender)
    sub(root, "sent", _sent(item["closed_at"] or item["created_at"], tz))
    sub(root, "status", "Actual")
    sub(root, "msgType", "Alert")
    sub(root, "scope", "Public")
    info = sub(root, "info")
    sub(info, "language", "en")
    sub(info, "category", CATEGORY.get(item["category"], "Other"))
    sub(info, "event", f"{item['category']} incident")
    sub(info, "urgency", "Past")
    sub(info, "severity", SEVERITY.get(item["priority"], "Unknown"))
    sub(info, "certainty", "Unlikely" if item["disposition"] == "false_alarm" else "Observed")
    sub(info, "onset", _sent(item["created_at"], tz))
    sub(info, "senderName", "helpline")
    sub(info, "headline", f"{item['ref_no']} {item['category']}: {item['disposition'] or item['status']}")
    for name in ("status", "disposition", "channel", "press_to_assigned_s", "press_to_on_scene_s",
                 "press_to_closed_s"):
        if item.get(name) is not None:
            p = sub(info, "parameter")
            sub(p, "valueName", name)
            sub(p, "value", str(round(item[name], 1)) if isinstance(item[name], float) else str(item[name]))
    area = sub(info, "area")
    code = item.get("grid_code")
    sub(area, "areaDesc", f"{grid_name or code} ({code})" if code else "not within a known grid")
    if code:
        g = sub(area, "geocode")
        sub(g, "valueName", "grid")
        sub(g, "value", code)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out
