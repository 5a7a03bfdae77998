"""Private channels over real sockets: the security matrix, re-auth, expiry, and order fan-out.

Every private message is published through the real publish API, and every
client reads until an end marker on a public channel, so "received nothing
private" is asserted on everything the client was sent, not on a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from .helpers import Client, Running, running_gateway
from .tokens import API_KEY, SECRET, claims, hs_token, none_token, rsa_keys, signed_hmac


ISS = "https://id.example"
AUD = "tickwire"
PRIVATE_KINDS = ("orders", "portfolio", "account")
TYPES = {"orders": "order", "portfolio": "portfolio", "account": "account"}
END = "signals:ENDMARK"


@contextlib.asynccontextmanager
async def secure_gateway(tmp_path: Path, **changes: Any) -> AsyncIterator[Running]:
    key_file = tmp_path / "jwt.pem"
    key_file.write_bytes(rsa_keys()[1])
    settings: dict[str, Any] = {
        "jwt_secret": SECRET,
        "jwt_public_key": str(key_file),
        "jwt_issuer": ISS,
        "jwt_audience": AUD,
        "api_keys": (API_KEY,),
        "linger": 0.2,
    }
    settings.update(changes)
    async with running_gateway(**settings) as gw:
        yield gw


def valid(sub: str, ttl: float = 300.0) -> str:
    return hs_token(sub, ttl, iss=ISS, aud=AUD)


async def publish(gw: Running, *messages: tuple[str, dict[str, Any]]) -> list[int]:
    """Publish through the HTTP API (a batch); returns the seqs."""
    body = {"messages": [{"channel": c, "data": d} for c, d in messages]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gw.url}/api/v1/publish/batch",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
            seqs = answer["seqs"]
            assert isinstance(seqs, list)
            return seqs


async def drain_until_end(client: Client, marker: Any) -> list[dict[str, Any]]:
    """Every message up to the end marker on the public END channel (that one excluded)."""
    seen: list[dict[str, Any]] = []
    while True:
        msg = await client.recv()
        if msg.get("channel") == END and msg.get("data") == marker:
            return seen
        seen.append(msg)


def private_data(messages: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [
        (m["type"], m["channel"], m["data"])
        for m in messages
        if m.get("channel", "").partition(":")[0] in PRIVATE_KINDS and "data" in m
    ]


def matrix_tokens() -> dict[str, str | None]:
    rsa_private, rsa_public = rsa_keys()
    return {
        "no_token": None,
        "forged_signature": hs_token(
            "alice", iss=ISS, aud=AUD, secret="not-the-secret-0123456789abcdefghijk"
        ),
        "alg_none": none_token(claims("alice", iss=ISS, aud=AUD)),
        "hs_rs_confusion": signed_hmac(claims("alice", iss=ISS, aud=AUD), rsa_public),
        "hs512_not_allowed": signed_hmac(claims("alice", iss=ISS, aud=AUD), SECRET.encode(), "HS512"),
        "rs_other_key": jwt.encode(claims("alice", iss=ISS, aud=AUD), rsa_keys(1)[0], algorithm="RS256"),
        "expired": hs_token("alice", -30, iss=ISS, aud=AUD),
        "wrong_audience": hs_token("alice", iss=ISS, aud="someone-else"),
        "wrong_issuer": hs_token("alice", iss="https://evil.example", aud=AUD),
        "valid_hs256": valid("alice"),
        "valid_rs256": jwt.encode(claims("alice", iss=ISS, aud=AUD), rsa_private, algorithm="RS256"),
    }


async def authenticate(client: Client, token: str | None, method: str) -> bool:
    """Present ``token`` by ``method``; True when the gateway accepted it. Checks the answer's shape."""
    if method == "url":
        if token is None:
            assert client.welcome["authenticated"] is False and "userId" not in client.welcome
            return False
        if client.welcome["authenticated"]:
            assert client.welcome["userId"] == "alice"
            return True
        assert "userId" not in client.welcome
        error = await client.recv()
        assert error["type"] == "error" and error["code"] == "UNAUTHORIZED", error
        return False
    assert client.welcome["authenticated"] is False
    if token is None:
        return False
    await client.send({"type": "auth", "token": token, "id": "a1"})
    answer = await client.recv()
    assert answer.get("id") == "a1", answer
    if answer["type"] == "authenticated":
        assert answer["userId"] == "alice" and answer["expiresAt"] > time.time() * 1000
        return True
    assert answer["type"] == "error" and answer["code"] == "UNAUTHORIZED", answer
    return False


async def test_security_matrix(tmp_path: Path) -> None:
    """{token kinds} x {public, own private, other's private} x {URL, auth message}: who gets what."""
    tokens = matrix_tokens()
    async with secure_gateway(tmp_path) as gw, contextlib.AsyncExitStack() as stack:
        cases: list[tuple[str, str, Client]] = []
        for name, token in tokens.items():
            for method in ("url", "message"):
                url = gw.ws_url
                if method == "url" and token is not None:
                    url = f"{url}?token={token}"
                client = await stack.enter_async_context(Client.connect(url))
                accepted = await authenticate(client, token, method)
                assert accepted == name.startswith("valid"), (name, method)
                mine = [f"{kind}:alice" for kind in PRIVATE_KINDS]
                answers = await client.subscribe(END, "signals:BTCUSDT", *mine, "orders:bob", "account:bob")
                codes = [a["type"] if a["type"] == "subscribed" else a["code"] for a in answers]
                if accepted:
                    assert codes == ["subscribed"] * 5 + ["FORBIDDEN", "FORBIDDEN"], (name, method, answers)
                else:
                    assert codes == ["subscribed"] * 2 + ["UNAUTHORIZED"] * 5, (name, method, answers)
                cases.append((name, method, client))
        bob = await stack.enter_async_context(Client.connect(f"{gw.ws_url}?token={valid('bob')}"))
        answers = await bob.subscribe(END, *[f"{k}:bob" for k in PRIVATE_KINDS], "orders:alice")
        assert [a["type"] for a in answers] == ["subscribed"] * 4 + ["error"]
        assert answers[-1]["code"] == "FORBIDDEN"

        sent: list[tuple[str, dict[str, Any]]] = [("signals:BTCUSDT", {"signal": "buy"})]
        for user in ("alice", "bob"):
            for kind in PRIVATE_KINDS:
                sent.append((f"{kind}:{user}", {"for": user, "kind": kind}))
        sent.append((END, {"end": 1}))
        await publish(gw, *sent)

        expected = {
            user: sorted((TYPES[k], f"{k}:{user}", {"for": user, "kind": k}) for k in PRIVATE_KINDS)
            for user in ("alice", "bob")
        }
        for name, method, client in cases:
            got = await drain_until_end(client, {"end": 1})
            signals = [m for m in got if m.get("channel") == "signals:BTCUSDT"]
            assert [m["data"] for m in signals] == [{"signal": "buy"}], (name, method)
            received = sorted(private_data(got), key=repr)
            want = expected["alice"] if name.startswith("valid") else []
            assert received == sorted(want, key=repr), (name, method, received)
        assert sorted(private_data(await drain_until_end(bob, {"end": 1})), key=repr) == sorted(
            expected["bob"], key=repr
        )
        assert gw.gateway.stats.errors["UNAUTHORIZED"] >= 5 * 2 * (len(tokens) - 2)


async def test_reauth_as_another_user_never_leaks_the_previous_users_data(tmp_path: Path) -> None:
    async with secure_gateway(tmp_path) as gw:
        url = gw.ws_url
        async with (
            Client.connect(f"{url}?token={valid('alice')}") as switcher,
            Client.connect(f"{url}?token={valid('alice')}") as alice,
        ):
            for c in (switcher, alice):
                assert [a["type"] for a in await c.subscribe(END, "orders:alice", "account:alice")] == [
                    "subscribed"
                ] * 3
            # race the switch against a burst of alice's orders (frames pile up unsent)
            burst = [("orders:alice", {"n": i}) for i in range(200)]
            publishing = asyncio.ensure_future(publish(gw, *burst))
            await switcher.send({"type": "auth", "token": valid("bob"), "id": 2})
            await publishing
            await publish(gw, ("orders:alice", {"n": "after"}), ("account:alice", {"n": "after"}))
            # bob's own channels work; alice's are now forbidden
            await switcher.send({"type": "subscribe", "channels": ["orders:bob", "orders:alice"]})
            got: list[
                dict[str, Any]
            ] = []  # everything, in order: the answers come after the burst and the switch
            while len(answers := [m for m in got if m["type"] in ("subscribed", "error")]) < 2:
                got.append(await switcher.recv())
            await publish(
                gw, ("orders:bob", {"n": "bob"}), ("orders:alice", {"n": "late"}), (END, {"end": 2})
            )
            got += await drain_until_end(switcher, {"end": 2})

            switched = next(i for i, m in enumerate(got) if m.get("type") == "authenticated")
            assert got[switched] == {
                "type": "authenticated",
                "userId": "bob",
                "expiresAt": got[switched]["expiresAt"],
                "id": 2,
            }
            ended = [m for m in got[:switched] if m["type"] == "unsubscribed"]
            assert sorted(m["channel"] for m in ended) == ["account:alice", "orders:alice"]
            assert all(m["reason"] == "re-authenticated" for m in ended)
            first_end = got.index(ended[0])
            after_switch = got[first_end:]
            assert [c for _, c, _ in private_data(after_switch)] == ["orders:bob"]
            assert [a.get("code", a["type"]) for a in answers] == ["subscribed", "FORBIDDEN"]
            # alice's own connection got everything, in seq order
            own = private_data(await drain_until_end(alice, {"end": 2}))
            assert [d for _, c, d in own if c == "orders:alice"] == [{"n": i} for i in range(200)] + [
                {"n": "after"},
                {"n": "late"},
            ]


async def test_reauth_same_user_keeps_channels_and_bad_reauth_keeps_identity(tmp_path: Path) -> None:
    async with secure_gateway(tmp_path) as gw:
        async with Client.connect(f"{gw.ws_url}?token={valid('alice')}") as c:
            await c.subscribe(END, "orders:alice")
            await c.send({"type": "auth", "token": valid("alice", 600)})
            assert (await c.recv())["type"] == "authenticated"
            await c.send({"type": "auth", "token": none_token(claims("bob"))})
            error = await c.recv()
            assert error["type"] == "error" and error["code"] == "UNAUTHORIZED"
            await publish(gw, ("orders:alice", {"still": "mine"}), (END, {"end": 3}))
            got = await drain_until_end(c, {"end": 3})
            assert private_data(got) == [("order", "orders:alice", {"still": "mine"})]
            assert not [m for m in got if m["type"] == "unsubscribed"]


async def test_token_expiry_closes_with_4001_unless_renewed(tmp_path: Path) -> None:
    async with secure_gateway(tmp_path) as gw:
        url = gw.ws_url
        short = valid("alice", ttl=1.5)  # exp is whole seconds: expires within 0.5-1.5 s
        expires = jwt.decode(short, options={"verify_signature": False})["exp"]

        async def expires_by_url() -> None:
            async with Client.connect(f"{url}?token={short}") as c:
                await c.subscribe("orders:alice")
                code, reason = await c.closed(timeout=4.0)
                assert code == 4001 and "expired" in reason
                assert time.time() >= expires - 0.05

        async def expires_by_message() -> None:
            async with Client.connect(url) as c:
                await c.send({"type": "auth", "token": short})
                assert (await c.recv())["expiresAt"] == expires * 1000
                code, _ = await c.closed(timeout=4.0)
                assert code == 4001

        async def renewed() -> None:
            async with Client.connect(f"{url}?token={short}") as c:
                await c.subscribe(END, "orders:alice")
                await c.send({"type": "auth", "token": valid("alice", 60)})
                assert (await c.recv())["type"] == "authenticated"
                await asyncio.sleep(max(0.0, expires - time.time()) + 0.5)  # under test: past the old expiry
                await publish(gw, ("orders:alice", {"after": "expiry"}), (END, {"end": 4}))
                got = await drain_until_end(c, {"end": 4})
                assert private_data(got) == [("order", "orders:alice", {"after": "expiry"})]

        await asyncio.gather(expires_by_url(), expires_by_message(), renewed())
        assert gw.gateway.stats.connections_closed[4001] == 2


async def test_order_update_reaches_exactly_the_owners_connections(tmp_path: Path) -> None:
    async with secure_gateway(tmp_path) as gw, contextlib.AsyncExitStack() as stack:
        url = gw.ws_url
        owners = [
            await stack.enter_async_context(Client.connect(f"{url}?token={valid('u123')}")) for _ in range(2)
        ]
        by_message = await stack.enter_async_context(Client.connect(url))
        await by_message.send({"type": "auth", "token": valid("u123")})
        assert (await by_message.recv())["type"] == "authenticated"
        owners.append(by_message)
        other = await stack.enter_async_context(Client.connect(f"{url}?token={valid('u999')}"))
        anonymous = await stack.enter_async_context(Client.connect(url))
        for c in owners:
            assert [a["type"] for a in await c.subscribe(END, "orders:u123")] == ["subscribed"] * 2
        await other.subscribe(END, "orders:u999")
        await anonymous.subscribe(END)

        order = {"orderId": "o-1", "symbol": "BTCUSDT", "status": "FILLED", "price": 97523.45, "qty": 0.015}
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{gw.url}/api/v1/publish",
                json={"channel": "orders:u123", "data": order},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as resp:
                assert resp.status == 200
                assert await resp.json() == {"success": True, "seq": 1}
        await publish(gw, ("orders:u123", {"orderId": "o-2"}), (END, {"end": 5}))
        for c in owners:
            got = await drain_until_end(c, {"end": 5})
            assert got == [
                {"type": "order", "channel": "orders:u123", "seq": 1, "data": order},
                {"type": "order", "channel": "orders:u123", "seq": 2, "data": {"orderId": "o-2"}},
            ]
        for c in (other, anonymous):
            assert private_data(await drain_until_end(c, {"end": 5})) == []


@pytest.mark.parametrize("token", ["", "garbage"])
async def test_url_token_without_auth_configured_is_refused_but_connection_stays(token: str) -> None:
    async with running_gateway(linger=0.2) as gw:
        async with Client.connect(f"{gw.ws_url}?token={token}") as c:
            assert c.welcome["authenticated"] is False
            error = await c.recv()
            assert error["code"] == "UNAUTHORIZED"
            [answer] = await c.subscribe("orders:alice")
            assert answer["code"] == "UNAUTHORIZED"
            await c.send({"type": "ping", "id": 1})
            assert (await c.recv())["type"] == "pong"
