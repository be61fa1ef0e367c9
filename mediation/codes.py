"""Join codes (read out and typed by people) and signing codes (texted to SMS parties)."""
from __future__ import annotations

import secrets

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"    # no 0/O, 1/I/L: read out and typed without mistakes
CODE_LEN = 8


def new_join_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))


def new_sign_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())
