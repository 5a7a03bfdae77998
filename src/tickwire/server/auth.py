"""Client tokens: JWT verification with an explicit algorithm allow-list.

A client proves who it is with a JWT, on the URL (``?token=``) or in an
``auth`` message (docs/protocol.md, "Auth"); its ``sub`` is the USERID of its
private channels. The rules (docs/security.md):

* Every accepted algorithm is named up front and bound to exactly one key:
  ``HS*`` to the shared secret, ``RS*``/``PS*`` to an RSA public key, ``ES*``
  to an EC public key. The token's header only *selects* among those pairs,
  so ``alg: none`` and the HS/RS confusion attack (an HMAC signed with the
  public key as secret) have no key to verify against and are refused.
* ``exp`` and ``sub`` are required; ``iss`` and ``aud`` are checked when set.
* Every failure is one ``ProtocolError(UNAUTHORIZED)`` whose message says
  why without echoing the token.

Verification is synchronous and cheap (measured on the 2-core dev machine:
about 56 us for HS256, 94 us for RS256, 130 us for ES256, PyJWT included),
and every ``auth`` message spends the client's message budget, so it runs on
the event loop.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.exceptions import InvalidSubjectError

from ..config import Settings
from ..errors import ConfigError, ErrorCode, ProtocolError


__all__ = [
    "ALGORITHMS",
    "MAX_TOKEN_LENGTH",
    "MIN_SECRET_BYTES",
    "Identity",
    "Verifier",
]

MAX_TOKEN_LENGTH = 8192
"""Longer tokens are refused before any decoding (they only cost CPU)."""

MIN_SECRET_BYTES = 32
"""RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (256 bits)."""

_HMAC = ("HS256", "HS384", "HS512")
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC = ("ES256", "ES384", "ES512")
ALGORITHMS = _HMAC + _RSA + _EC
"""Every algorithm that may be allowed; ``none`` is never one of them."""

_USER = re.compile(r"\S{1,128}")  # docs/protocol.md: USERID is 1 to 128 characters, no whitespace
_EC_DEFAULT = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified client: ``user`` is the token's ``sub``; ``expires_at_ms`` its ``exp`` in ms."""

    user: str
    expires_at_ms: int | None


def _unauthorized(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.UNAUTHORIZED, message)


class Verifier:
    """Checks client tokens against a fixed set of (algorithm, key) pairs.

    Args:
        secret: the shared HMAC secret (``HS*``), at least 32 bytes.
        public_key: a PEM public key (RSA for ``RS*``/``PS*``, EC for ``ES*``).
        algorithms: the allow-list; empty means one per key: HS256 for the
            secret, RS256 for an RSA key, ES256/384/512 for an EC key by curve.
        issuer: required ``iss``, when set.
        audience: required ``aud``, when set (a token with an ``aud`` is refused
            when none is configured).

    Raises:
        ConfigError: no key, a weak key, or an algorithm without a matching key.
    """

    def __init__(
        self,
        *,
        secret: bytes | None = None,
        public_key: bytes | None = None,
        algorithms: tuple[str, ...] = (),
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if secret is None and public_key is None:
            raise ConfigError("token verification needs --jwt-secret, --jwt-secret-file or --jwt-public-key")
        self._issuer = issuer
        self._audience = audience
        self._require = ["exp", "sub"] + (["iss"] if issuer else []) + (["aud"] if audience else [])
        candidates: dict[str, Any] = {}
        defaults: list[str] = []
        if secret is not None:
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(f"JWT secret: must be at least {MIN_SECRET_BYTES} bytes")
            candidates.update(dict.fromkeys(_HMAC, secret))
            defaults.append("HS256")
        if public_key is not None:
            key, names, default = _load_public_key(public_key)
            candidates.update(dict.fromkeys(names, key))
            defaults.append(default)
        wanted = algorithms or tuple(defaults)
        for name in wanted:
            if name not in ALGORITHMS:
                raise ConfigError(f"--jwt-algorithms: {name!r} is not one of {', '.join(ALGORITHMS)}")
            if name not in candidates:
                raise ConfigError(f"--jwt-algorithms: {name} has no matching key configured")
        self._keys: dict[str, Any] = {name: candidates[name] for name in wanted}

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier | None:
        """The verifier the settings describe, or None when no key is configured.

        Raises:
            ConfigError: a file cannot be read or a key is unusable.
        """
        s = settings
        secret: bytes | None = s.jwt_secret.encode() if s.jwt_secret else None
        if s.jwt_secret_file:
            secret = _read(s.jwt_secret_file, "--jwt-secret-file").strip()
        public_key = _read(s.jwt_public_key, "--jwt-public-key") if s.jwt_public_key else None
        if secret is None and public_key is None:
            if s.jwt_algorithms or s.jwt_issuer or s.jwt_audience:
                raise ConfigError("--jwt-algorithms/--jwt-issuer/--jwt-audience need a JWT key")
            return None
        return cls(
            secret=secret,
            public_key=public_key,
            algorithms=s.jwt_algorithms,
            issuer=s.jwt_issuer,
            audience=s.jwt_audience,
        )

    @property
    def algorithms(self) -> list[str]:
        return list(self._keys)

    def verify(self, token: str) -> Identity:
        """The identity in ``token``.

        Raises:
            ProtocolError: ``UNAUTHORIZED``, with the reason.
        """
        if not token:
            raise _unauthorized("empty token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _unauthorized(f"token over {MAX_TOKEN_LENGTH} characters")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _unauthorized("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._keys:
            shown = alg[:20] if isinstance(alg, str) else alg
            raise _unauthorized(f"token algorithm {shown!r} is not allowed")
        claims = self._decode(token, alg)
        return _identity(claims)

    async def authenticate(self, token: str) -> Identity:
        """:meth:`verify` as the session's ``authenticate`` hook."""
        return self.verify(token)

    def _decode(self, token: str, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._keys[alg],
                algorithms=[alg],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": self._require},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("token signature does not verify") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"token lacks the {exc.claim!r} claim") from None
        except InvalidSubjectError:
            raise _unauthorized("token 'sub' must be a string") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("token is not valid yet") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _unauthorized("invalid token") from None


def _identity(claims: dict[str, Any]) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _USER.fullmatch(sub):
        raise _unauthorized("token 'sub' must be 1 to 128 characters without whitespace")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise _unauthorized("token 'exp' must be a number (seconds since the epoch)")
    return Identity(sub, int(exp * 1000))


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag}={path!r}: {exc.strerror or exc}") from None


def _load_public_key(pem: bytes) -> tuple[Any, tuple[str, ...], str]:
    """A PEM public key, loaded once; the algorithms it can verify and the default one."""
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ConfigError("--jwt-public-key: not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(f"--jwt-public-key: RSA key of {key.key_size} bits; at least 2048 needed")
        return key, _RSA, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        default = _EC_DEFAULT.get(key.curve.name)
        if default is None:
            raise ConfigError(f"--jwt-public-key: EC curve {key.curve.name} is not used by JWT")
        return key, (default,), default
    raise ConfigError("--jwt-public-key: only RSA and EC keys are supported")
