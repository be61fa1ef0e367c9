"""The VAPID key pair (RFC 8292) that signs every push: from push.vapid_private_key, or generated once
and kept in PostgreSQL so that every node of a cluster signs with the key the browsers subscribed with."""
from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from infra.config import ConfigError


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    t = "".join(text.split())
    return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))


def generate() -> str:
    """A new private key, as stored: base64url of its 32-byte private number."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def parse(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM, base64url DER, or base64url of the raw 32-byte number;
    ConfigError naming push.vapid_private_key otherwise."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = _unb64(text)
            key = (ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()) if len(raw) == 32
                   else serialization.load_der_private_key(raw, password=None))
    except (ValueError, TypeError, binascii.Error) as e:
        raise ConfigError(f"push.vapid_private_key: not a usable P-256 private key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("push.vapid_private_key: must be an EC P-256 key")
    return key


class Keypair:
    """The signer pywebpush takes, and the public key the pages subscribe with."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.signer = Vapid02(private_key)
        point = private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                      serialization.PublicFormat.UncompressedPoint)
        self.public_key = b64url(point)    # what PushManager.subscribe takes as applicationServerKey
