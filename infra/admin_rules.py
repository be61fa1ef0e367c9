"""What an admin may do to an account: pure rules, no I/O (the admin console, issue 21).

    the last active admin ──suspend──▶ conflict      (nobody could administer the service any more)
                          ──demote───▶ conflict
    any other account     ──suspend / demote / reinstate──▶ allowed

An *active* admin is an account with role admin that is not suspended. The store counts them under a
lock (infra/admin_store.py `lock_active_admins`) and asks `check_admin_change`; the edges never decide.
Reset codes: `new_code` makes one, `code_hash` is all that is kept of it.
"""
from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

from infra.errors import BadRequest, Conflict

# letters and digits without the ones misread (0/O, 1/I/L): 31 symbols, 12 of them are 59 random bits
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12


class Change(StrEnum):
    SUSPEND = "suspend"
    DEMOTE = "demote"


def check_admin_change(change: Change, target_is_active_admin: bool, active_admins: int) -> None:
    """Conflict if the change would leave no active admin."""
    if target_is_active_admin and active_admins <= 1:
        what = "suspend" if change is Change.SUSPEND else "change the role of"
        raise Conflict(f"cannot {what} the last active admin: make another admin first")


def admin_changes(current_role: str, disabled: bool, new_role: str | None, suspend: bool) -> list[Change]:
    """Which of the guarded changes an edit makes to an account (none unless it is an active admin)."""
    if current_role != "admin" or disabled:
        return []
    out = []
    if suspend:
        out.append(Change.SUSPEND)
    if new_role is not None and new_role != "admin":
        out.append(Change.DEMOTE)
    return out


def new_code() -> str:
    """A one-time code as shown to the admin: ABCD-EFGH-JKMN."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(code: str) -> str:
    """A code as typed (any case, dashes or spaces) in its stored form; BadRequest naming the field."""
    raw = "".join(ch for ch in code.upper() if ch not in "- ")
    if len(raw) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in raw):
        raise BadRequest(f"code: {CODE_LENGTH} letters and digits, as the admin gave it")
    return raw


def code_hash(code: str) -> str:
    """What is stored of a code: its SHA-256 (59 random bits, used once within minutes: no slow hash needed)."""
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()
