"""Keys and tokens for the auth tests: valid ones, and every kind of forgery."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


__all__ = [
    "API_KEY",
    "SECRET",
    "b64url",
    "ec_keys",
    "hs_token",
    "none_token",
    "rsa_keys",
    "signed_hmac",
]

SECRET = "test-secret-0123456789abcdef0123456789abcdef"  # 44 bytes, over the 32-byte minimum
API_KEY = "pub-key-0123456789abcdef"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pems(private: Any) -> tuple[bytes, bytes]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


@functools.cache
def rsa_keys(which: int = 0) -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a 2048-bit RSA key; ``which`` picks another key."""
    return _pems(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@functools.cache
def ec_keys(which: int = 0) -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a P-256 key."""
    return _pems(ec.generate_private_key(ec.SECP256R1()))


def claims(sub: str = "alice", ttl: float = 300.0, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time() + ttl), **extra}


def hs_token(sub: str = "alice", ttl: float = 300.0, secret: str = SECRET, **extra: Any) -> str:
    return jwt.encode(claims(sub, ttl, **extra), secret, algorithm="HS256")


def signed_hmac(payload: dict[str, Any], key: bytes, alg: str = "HS256") -> str:
    """An HMAC token built by hand: PyJWT refuses a PEM as HMAC key, an attacker does not."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), digest).digest()
    return f"{header}.{body}.{b64url(signature)}"


def none_token(payload: dict[str, Any], alg: str = "none") -> str:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}."
