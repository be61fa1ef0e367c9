"""Join codes (read out and typed by people) and signing codes (texted to SMS parties)."""
from __future__ import annotations

import secrets

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"    # no 0/O, 1/I/L: read out and typed without mistakes
# 31^10 ≈ 8.2e14 codes: with 10,000 open slots, a guess hits one in 8e10 (the arithmetic: docs/mediation.md)
CODE_LEN = 10
CODE_LENGTHS = (8, 10)      # codes handed out before 011 had 8 characters and still work


def new_join_code() -> str:
    """CODE_LEN characters with a digit among them (a text of ten letters is read as a word, not a code)."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))
        if any(ch.isdigit() for ch in code):
            return code


def new_sign_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())
