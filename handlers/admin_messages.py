"""Typed bodies of the admin console's routes (/api/admin/…, POST /api/auth/reset), decoded once at the edge."""
from __future__ import annotations

from typing import Annotated

import msgspec

from handlers.messages import Skill

Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Name = Annotated[str, msgspec.Meta(max_length=100)]
Phone = Annotated[str, msgspec.Meta(max_length=32)]
GridCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Password = Annotated[str, msgspec.Meta(max_length=256)]


AgencyTypeField = Annotated[str, msgspec.Meta(max_length=32)]     # infra/agency_types.py checks the value


class AccountCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new staff account. Without a password, the answer carries a one-time code the person sets their own
    password with (POST /api/auth/reset). `agency_type`: agencies only (court, police, justice, …)."""

    username: Username
    role: Annotated[str, msgspec.Meta(max_length=16)]
    name: Name | None = None
    phone: Phone | None = None
    password: Password | None = None
    skills: Annotated[list[Skill], msgspec.Meta(max_length=16)] | None = None
    grids: Annotated[list[GridCode], msgspec.Meta(max_length=64)] | None = None
    supervisor: bool = False
    area_limited: bool = False
    agency_type: AgencyTypeField | None = None


class AccountEdit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields to change (absent: unchanged). `phone: ""` removes the phone, `grids: []` clears them.
    A role change ends the account's sessions."""

    username: Username | None = None
    role: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    name: Name | None = None
    phone: Phone | None = None
    skills: Annotated[list[Skill], msgspec.Meta(max_length=16)] | None = None
    grids: Annotated[list[GridCode], msgspec.Meta(max_length=64)] | None = None
    supervisor: bool | None = None
    area_limited: bool | None = None
    agency_type: AgencyTypeField | None = None


class SessionsEnd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """End one session (`session`: an id from the listing) or, without it, every session of the account."""

    session: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


class PasswordReset(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new password, set with the one-time code an admin gave."""

    username: Username
    code: Annotated[str, msgspec.Meta(max_length=32)]
    password: Password
