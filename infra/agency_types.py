"""The kinds of agency in the 3+N directory (issue 15, contract §10). Pure.

"3" are the local court (人民法庭), the police station (派出所) and the justice office (司法所); "N" the
other bodies that mediate with them. An agency account carries one (`accounts.agency_type`); a case
referred to a body outside the system names one with a free-text name (mediation/rules.ReferredTo).
The pages' words for each are in web/static/js/strings.js (`agency_type_<value>`).
"""
from __future__ import annotations

from enum import StrEnum

from infra.errors import BadRequest


class AgencyType(StrEnum):
    COURT = "court"
    POLICE = "police"
    JUSTICE = "justice"
    WOMENS_FEDERATION = "womens_federation"
    CIVIL_AFFAIRS = "civil_affairs"
    SECURITY_COMMITTEE = "security_committee"
    PARTY_SERVICE = "party_service"
    OTHER = "other"


ALLOWED = ", ".join(t.value for t in AgencyType)


def parse(value: str, field: str = "agency_type") -> AgencyType:
    """The type named by `value` (any case, surrounding spaces ignored); BadRequest naming the allowed ones."""
    try:
        return AgencyType(value.strip().lower())
    except ValueError:
        raise BadRequest(f"{field}: {value.strip()[:40]!r} is not an agency type; one of {ALLOWED}") from None
