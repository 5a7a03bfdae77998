"""auth.Verifier without sockets: what is accepted, what is refused and why, and properties."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tickwire.config import Settings, replace
from tickwire.errors import ConfigError, ErrorCode, ProtocolError
from tickwire.protocol import Auth, parse_client
from tickwire.server.auth import MAX_TOKEN_LENGTH, Identity, Verifier

from .tokens import SECRET, b64url, claims, ec_keys, hs_token, none_token, rsa_keys, signed_hmac


def refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(ProtocolError) as info:
        verifier.verify(token)
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert len(token) < 20 or token not in info.value.message  # the token is never echoed
    return info.value.message


@pytest.fixture(scope="module")
def hs() -> Verifier:
    return Verifier(secret=SECRET.encode())


@pytest.fixture(scope="module")
def rs() -> Verifier:
    return Verifier(public_key=rsa_keys()[1])


def test_hs256_valid_token_gives_user_and_expiry(hs: Verifier) -> None:
    exp = int(time.time()) + 60
    token = jwt.encode({"sub": "auth0|abc:1", "exp": exp}, SECRET, algorithm="HS256")
    assert hs.verify(token) == Identity("auth0|abc:1", exp * 1000)
    assert hs.algorithms == ["HS256"]


def test_rs256_and_es256_valid(rs: Verifier) -> None:
    token = jwt.encode(claims("bob"), rsa_keys()[0], algorithm="RS256")
    assert rs.verify(token).user == "bob"
    es = Verifier(public_key=ec_keys()[1])
    assert es.algorithms == ["ES256"]
    assert es.verify(jwt.encode(claims("carol"), ec_keys()[0], algorithm="ES256")).user == "carol"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: hs_token(secret="another-secret-0123456789abcdef-xyz"), "signature"),
        (lambda: hs_token(ttl=-5), "expired"),
        (lambda: none_token(claims()), "not allowed"),
        (lambda: none_token(claims(), alg="None"), "not allowed"),
        (lambda: signed_hmac(claims(), SECRET.encode(), "HS512"), "not allowed"),
        (lambda: jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"), "'exp'"),
        (lambda: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"), "'sub'"),
        (lambda: hs_token(sub="has space"), "sub"),
        (lambda: hs_token(sub="x" * 129), "sub"),
        (lambda: hs_token(nbf=int(time.time()) + 60), "not valid yet"),
        (lambda: hs_token(aud="someone"), "audience"),  # aud present but none configured
        (lambda: "not.a.token", "malformed"),
        (lambda: "", "empty"),
        (lambda: "a" * (MAX_TOKEN_LENGTH + 1), "over"),
        (lambda: signed_hmac({"sub": "alice", "exp": "soon"}, SECRET.encode()), "token"),
        (lambda: signed_hmac({"sub": 7, "exp": int(time.time()) + 60}, SECRET.encode()), "ub"),
    ],
)
def test_hs256_refusals(hs: Verifier, make: object, why: str) -> None:
    assert callable(make)
    assert why in refused(hs, make())


def test_algorithm_confusion_is_refused(rs: Verifier) -> None:
    """HS256 keyed with the RSA public key (the classic confusion attack) has no key to check against."""
    public_pem = rsa_keys()[1]
    forged = signed_hmac(claims(), public_pem)
    assert "not allowed" in refused(rs, forged)
    # with a secret configured as well, HS256 is checked against the secret only
    both = Verifier(secret=SECRET.encode(), public_key=public_pem)
    assert sorted(both.algorithms) == ["HS256", "RS256"]
    assert "signature" in refused(both, forged)
    # an RS256 token signed by another key
    other = jwt.encode(claims(), rsa_keys(1)[0], algorithm="RS256")
    assert "signature" in refused(rs, other)
    # an ES256 token against an RSA-only verifier
    assert "not allowed" in refused(rs, jwt.encode(claims(), ec_keys()[0], algorithm="ES256"))


def test_issuer_and_audience() -> None:
    v = Verifier(secret=SECRET.encode(), issuer="https://id.example", audience="tickwire")
    good = hs_token(iss="https://id.example", aud="tickwire")
    assert v.verify(good).user == "alice"
    assert "issuer" in refused(v, hs_token(iss="https://evil.example", aud="tickwire"))
    assert "audience" in refused(v, hs_token(iss="https://id.example", aud="other"))
    assert "'iss'" in refused(v, hs_token(aud="tickwire"))
    assert "'aud'" in refused(v, hs_token(iss="https://id.example"))


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        Verifier(secret=b"short")
    with pytest.raises(ConfigError, match="needs"):
        Verifier()
    with pytest.raises(ConfigError, match="no matching key"):
        Verifier(secret=SECRET.encode(), algorithms=("RS256",))
    with pytest.raises(ConfigError, match="not one of"):
        Verifier(secret=SECRET.encode(), algorithms=("none",))
    with pytest.raises(ConfigError, match="PEM"):
        Verifier(public_key=b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    base = Settings()
    assert Verifier.from_settings(base) is None
    with pytest.raises(ConfigError, match="need a JWT key"):
        Verifier.from_settings(replace(base, jwt_audience="x"))
    with pytest.raises(ConfigError, match="jwt-public-key"):
        Verifier.from_settings(replace(base, jwt_public_key=str(tmp_path / "missing.pem")))
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(rsa_keys()[1])
    v = Verifier.from_settings(replace(base, jwt_secret_file=str(secret_file), jwt_public_key=str(key_file)))
    assert v is not None and sorted(v.algorithms) == ["HS256", "RS256"]
    assert v.verify(hs_token()).user == "alice"
    assert v.verify(jwt.encode(claims("dan"), rsa_keys()[0], algorithm="RS256")).user == "dan"


def test_secrets_are_not_in_settings_repr() -> None:
    s = replace(Settings(), jwt_secret=SECRET, api_keys=("k" * 20,))
    assert SECRET not in repr(s) and "k" * 20 not in repr(s)


# -- properties ---------------------------------------------------------------

_fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@_fast
@given(token=st.text(max_size=300))
def test_any_text_is_refused_with_unauthorized_only(hs: Verifier, token: str) -> None:
    refused(hs, token)


@_fast
@given(
    header=st.dictionaries(st.text(max_size=8), _json, max_size=4), payload=_json, sig=st.binary(max_size=40)
)
def test_arbitrary_headers_and_payloads_are_refused(
    hs: Verifier, header: dict[str, Any], payload: object, sig: bytes
) -> None:
    parts = [b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(sig)]
    refused(hs, ".".join(parts))


@_fast
@given(
    sub=st.text(min_size=1, max_size=140), extra=st.dictionaries(st.sampled_from(["jti", "x", "role"]), _json)
)
def test_valid_signature_gives_exactly_its_sub_or_refuses(
    hs: Verifier, sub: str, extra: dict[str, Any]
) -> None:
    token = hs_token(sub=sub, **extra)
    ok = 1 <= len(sub) <= 128 and not any(c.isspace() for c in sub)
    if not ok or ("jti" in extra and not isinstance(extra["jti"], str)):
        refused(hs, token)
    else:
        assert hs.verify(token).user == sub


@_fast
@given(position=st.integers(min_value=0), char=st.sampled_from("AQgw_-xyz0189"))
def test_a_changed_character_never_yields_another_identity(hs: Verifier, position: int, char: str) -> None:
    token = hs_token(sub="alice")
    i = position % len(token)
    if token[i] in ".":
        return
    mutated = token[:i] + char + token[i + 1 :]
    try:
        identity = hs.verify(mutated)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.UNAUTHORIZED
    else:  # only a change in base64 padding bits can keep the token valid: then it is the same one
        assert identity.user == "alice"


@_fast
@given(obj=st.dictionaries(st.sampled_from(["type", "token", "id", "x"]), _json, max_size=4))
def test_auth_message_parser_accepts_exactly_string_tokens(obj: dict[str, Any]) -> None:
    obj["type"] = "auth"
    try:
        msg = parse_client(json.dumps(obj))
    except ProtocolError as exc:
        assert exc.code is ErrorCode.INVALID_MESSAGE
        ref = obj.get("id")
        token_ok = isinstance(obj.get("token"), str)
        ref_ok = ref is None or (isinstance(ref, str | int) and not isinstance(ref, bool))
        assert not (token_ok and ref_ok and (not isinstance(ref, str) or len(ref) <= 128))
    else:
        assert isinstance(msg, Auth) and msg.token == obj["token"] and isinstance(msg.token, str)
