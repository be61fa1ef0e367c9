"""Tokens and passwords: all JWT handling lives here.

python-jose's defaults are unsafe (no algorithm allow-list unless given, and
missing exp/aud/iss/sub pass unless required), so `decode` pins HS256,
requires every claim we rely on and honours nbf with a small leeway. The `kid`
header names the signing key, so a new secret can be rolled in while tokens
signed with the previous one (auth.previous_secrets) stay valid.
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jose import jwt
from jose.exceptions import JOSEError

from infra.errors import Unauthorized

ALGORITHM = "HS256"
LEEWAY_S = 30
ROLES = ("resident", "responder", "dispatcher", "mediator", "agency", "admin", "clerk")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        _hasher.hash(password)  # same cost whether or not the account has a password
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


SESSION_ENDED_PREFIX = '{"type":"session.ended"'


def session_ended(token_id: str | None = None) -> str:
    """The control message (on an account's channel) that closes its sessions, or one token's."""
    return json.dumps({"type": "session.ended", "jti": token_id}, separators=(",", ":"))


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Claims:
    account_id: str
    role: str
    token_id: str
    expires_at: int
    epoch: int


class TokenService:
    def __init__(self, secret: str, issuer: str, audience: str, ttl_s: int,
                 previous_secrets: tuple[str, ...] = ()) -> None:
        self.secret, self.issuer, self.audience, self.ttl_s = secret, issuer, audience, ttl_s
        self._keys = {key_id(s): s for s in (secret, *previous_secrets)}

    def issue(self, account_id: str, role: str, epoch: int = 0, now: float | None = None) -> str:
        """A token for the account; `epoch` is the account's session epoch (bumped to end all sessions)."""
        now = int(now if now is not None else time.time())
        claims = {"sub": account_id, "role": role, "ep": epoch, "iss": self.issuer, "aud": self.audience,
                  "iat": now, "nbf": now, "exp": now + self.ttl_s, "jti": uuid.uuid4().hex}
        token: str = jwt.encode(claims, self.secret, algorithm=ALGORITHM, headers={"kid": key_id(self.secret)})
        return token

    def decode(self, token: str) -> Claims:
        """The token's claims, or Unauthorized for anything wrong with it."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise Unauthorized("missing or malformed token")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise Unauthorized("token algorithm not accepted")
            secret = self._keys.get(header.get("kid", ""))
            if secret is None:
                raise Unauthorized("token signed with an unknown key")
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                options={"require_exp": True, "require_iat": True, "require_nbf": False, "require_iss": True,
                         "require_aud": True, "require_sub": True, "require_jti": True, "leeway": LEEWAY_S})
        except Unauthorized:
            raise
        except (JOSEError, ValueError, TypeError, KeyError, AttributeError):
            raise Unauthorized("invalid or expired token") from None
        role, epoch = claims.get("role"), claims.get("ep", 0)
        if role not in ROLES or not isinstance(claims.get("sub"), str) or not isinstance(epoch, int):
            raise Unauthorized("invalid token claims")
        return Claims(claims["sub"], role, str(claims["jti"]), int(claims["exp"]), epoch)
