"""Reports (issue 16, contract §11) as pure code: what a report's parameters mean, and its CSV.

    GET /api/reports/incidents?from=2026-01-01&to=2026-03-31&by=grid&grid=D01&format=csv
        │ parse_query: dates in the city's time zone (`reports.time_zone`), `to` inclusive,
        │ at most MAX_DAYS days, `by` one of the report's groupings; each bad field named
        ▼
    Query(start, end, by, grid, csv) ──▶ reports/store.py: one GROUP BY over incident_facts
        ▼
    rows (one per group, then the total) ──▶ JSON {"rows": [...], "total": {...}} or csv_table()

Who may ask for which area is reports/access.py's; nothing here does I/O.
"""
from __future__ import annotations

import base64
import csv
import io
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from infra.errors import BadRequest, Forbidden

MAX_DAYS = 400             # the longest period a report covers
DEFAULT_DAYS = 30          # the period when `from` is not given: the last 30 days up to `to`
BOM = "\ufeff"             # so that Excel opens the CSV as UTF-8 (Chinese names)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GRID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Grouping(StrEnum):
    CATEGORY = "category"
    GRID = "grid"
    CHANNEL = "channel"
    AGENCY = "agency"
    DAY = "day"
    WEEK = "week"            # ISO weeks, from Monday
    MONTH = "month"


INCIDENT_GROUPINGS = (Grouping.CATEGORY, Grouping.GRID, Grouping.CHANNEL, Grouping.DAY, Grouping.WEEK,
                      Grouping.MONTH)
# by agency: the type of the body a referred case went to (an agency account's agency_type, or the type named
# for a body outside the system); cases not referred make the group "" (none)
CASE_GROUPINGS = (Grouping.CATEGORY, Grouping.GRID, Grouping.AGENCY, Grouping.MONTH)
PERIODS = frozenset({Grouping.DAY, Grouping.WEEK, Grouping.MONTH})

# the intervals of the incident report, each a column of incident_facts or a difference of two
INTERVALS = ("press_to_first_offer", "press_to_assigned", "assigned_to_on_scene", "press_to_resolved")
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95))
INCIDENT_COUNTS = ("received", "escalated", "cancelled", "resolved", "false_alarms")
INCIDENT_RATIOS = ("offers", "offers_accepted", "offer_acceptance", "offers_per_incident", "assigned_within_target")
# the case report: counts by outcome (`taken`: a mediator took it), then days to take and to close
CASE_COUNTS = ("filed", "taken", "settled", "failed", "referred", "withdrawn", "overdue")
# the parties' satisfaction answers (case_feedback, 1-5): how many, and their mean
CASE_SATISFACTION = ("satisfaction_answers", "satisfaction_mean")
CASE_INTERVALS = ("days_to_take", "days_to_close")
CASE_PERCENTILES = (("p50", 0.5), ("p90", 0.9))


@dataclass(frozen=True)
class Query:
    start: datetime          # inclusive, aware
    end: datetime            # exclusive, aware
    first_day: date
    last_day: date
    by: Grouping
    grid: str | None         # the area picked (a grid code at any level), or None: the caller's whole area
    csv: bool


def _day(raw: str, field: str) -> date:
    if not _DATE.match(raw):
        raise BadRequest(f"{field}: {raw[:40]!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{field}: {raw!r} is not a date (YYYY-MM-DD)") from None


def parse_query(q: Mapping[str, str], *, today: date, tz: ZoneInfo,
                groupings: Sequence[Grouping] = INCIDENT_GROUPINGS) -> Query:
    """The report's parameters, or BadRequest naming the field: `from` and `to` are days of the city
    (`to` included, default today; `from` default DEFAULT_DAYS days before), `by` one of `groupings`
    (default the first), `grid` a grid code, `format` json or csv."""
    last = _day(q["to"], "to") if q.get("to") else today
    first = _day(q["from"], "from") if q.get("from") else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadRequest(f"from: {first} is after to ({last})")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadRequest(f"to: the period is {(last - first).days + 1} days; at most {MAX_DAYS}")
    raw_by = q.get("by") or str(groupings[0])
    if raw_by not in {str(g) for g in groupings}:
        raise BadRequest(f"by: {raw_by[:40]!r} is not one of {', '.join(groupings)}")
    grid = q.get("grid") or None
    if grid is not None and not _GRID.match(grid):
        raise BadRequest("grid: not a grid code")
    fmt = q.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise BadRequest(f"format: {fmt[:40]!r} is not json or csv")
    return Query(start=datetime.combine(first, time(), tz), end=datetime.combine(last + timedelta(days=1), time(), tz),
                 first_day=first, last_day=last, by=Grouping(raw_by), grid=grid, csv=fmt == "csv")


def ratio(num: float, den: float) -> float | None:
    """num / den, or None when there is nothing to divide by (no offers, no incidents)."""
    return num / den if den else None


def within_target(assigned_s: float | None, closed_s: float | None, target_s: float) -> bool | None:
    """Whether an incident counts toward the share assigned within the target: True if it was assigned
    within `target_s`, None (left out) if it was closed unassigned within it (a cancel before anyone
    could be sent), else False. Stated here; the SQL of reports/store.py says the same."""
    if assigned_s is not None and assigned_s <= target_s:
        return True
    if assigned_s is None and closed_s is not None and closed_s <= target_s:
        return None
    return False


def incident_columns() -> list[str]:
    """The CSV header of the incident report, in order."""
    cols = ["group", "label", *INCIDENT_COUNTS]
    for name in INTERVALS:
        cols += [f"{name}_{p}_s" for p, _ in PERCENTILES]
    return cols + list(INCIDENT_RATIOS)


def case_columns() -> list[str]:
    """The CSV header of the case report, in order."""
    cols = ["group", "label", *CASE_COUNTS]
    for name in CASE_INTERVALS:
        cols += [f"{name}_{p}" for p, _ in CASE_PERCENTILES]
    return cols + list(CASE_SATISFACTION)


def flat(row: Mapping[str, Any], unit: str = "_s") -> dict[str, Any]:
    """A report row with its nested percentiles spread out into columns: `press_to_assigned_p90_s`."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Mapping):
            out.update({f"{k}_{p}{unit}": x for p, x in v.items()})
        else:
            out[k] = v
    return out


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if v == v else ""
    return str(v)


def csv_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], unit: str = "_s") -> str:
    """The rows as CSV (RFC 4180, CRLF), BOM first; nested percentiles flattened (`flat`, their columns
    ending in `unit`), None empty, floats to three decimals."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for row in rows:
        f = flat(row, unit)
        w.writerow([_cell(f.get(c)) for c in columns])
    return BOM + buf.getvalue()


def check_area(limited: bool, own: Sequence[str], picked: str | None, picked_path: Sequence[str] | None) -> None:
    """Forbidden when an area-limited caller picks an area outside theirs (a grid none of whose path is one
    of their own grids); an unknown grid is BadRequest naming `grid`. Unlimited callers may pick any."""
    if picked is not None and picked_path is None:
        raise BadRequest(f"grid: no grid {picked!r}")
    if limited and picked_path is not None and not set(picked_path) & set(own):
        raise Forbidden(f"grid: {picked} is outside your area")


# ---------------------------------------------------------------- export (GET /api/export/incidents)
EXPORT_PAGE = 500          # incidents per page by default
EXPORT_MAX_PAGE = 1000


@dataclass(frozen=True)
class ExportQuery:
    since: datetime          # closed at or after
    after: tuple[datetime, str] | None    # the cursor: the last (closed_at, id) of the previous page
    limit: int


def parse_when(raw: str, field: str, tz: ZoneInfo) -> datetime:
    """A day of the city (its midnight) or an ISO 8601 time (UTC when it has no offset)."""
    try:
        if _DATE.match(raw):
            return datetime.combine(date.fromisoformat(raw), time(), tz)
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{field}: {raw[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo("UTC"))


def cursor(closed_at: datetime, incident_id: str) -> str:
    """The opaque cursor after this incident (urlsafe base64 of `closed_at|id`)."""
    return base64.urlsafe_b64encode(f"{closed_at.isoformat()}|{incident_id}".encode()).decode().rstrip("=")


def parse_export(q: Mapping[str, str], tz: ZoneInfo) -> ExportQuery:
    if not q.get("since"):
        raise BadRequest("since: required (YYYY-MM-DD or an ISO 8601 time)")
    since = parse_when(q["since"], "since", tz)
    after = None
    if q.get("cursor"):
        try:
            raw = q["cursor"]
            at, _, iid = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().partition("|")
            after = (datetime.fromisoformat(at), str(uuid.UUID(iid)))
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("cursor: not a cursor this server gave") from None
    raw_limit = q.get("limit") or str(EXPORT_PAGE)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= EXPORT_MAX_PAGE:
        raise BadRequest(f"limit: a number from 1 to {EXPORT_MAX_PAGE}")
    return ExportQuery(since=since, after=after, limit=int(raw_limit))
