"""Who is acting: the one identity type for a signed-in account, used by every domain and edge."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    RESIDENT = "resident"
    RESPONDER = "responder"
    DISPATCHER = "dispatcher"
    MEDIATOR = "mediator"
    AGENCY = "agency"
    ADMIN = "admin"
    CLERK = "clerk"       # front desk: opens cases for visitors and names their parties, nothing else


@dataclass(frozen=True)
class Account:
    """A signed-in account as the rules see it: its id, role and display name."""

    id: str
    role: str            # a Role value
    name: str = ""
