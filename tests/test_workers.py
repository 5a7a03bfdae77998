"""``--workers``: the children get every setting of the parent through its ``TICKWIRE_*`` twin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tickwire.config import OPTIONS, Settings, replace, settings_from
from tickwire.server.workers import _env_of


CAPTURE = str(Path(__file__).parent / "data" / "binance" / "session.capture.jsonl")

PER_CHILD = {"role", "workers", "port", "host", "reuse_port"}
"""Set by the parent on each child's command line, never through the environment."""

UNUSUAL = Settings(
    host="0.0.0.0", port=4321, source="replay", seed=7, linger=0.5, ping_interval=12.5,
    max_subscriptions=9, rate=3.5, burst=4.0, max_message_size=2048, max_queue=17, write_delay_ms=2.5,
    history="trades=5,orders=7,portfolio=7,account=7", history_memory=2 * 1024**2, resume_window=3.5,
    shutdown_timeout=1.25, log_level="debug", log_format="json", log_rate=0.0,
    binance_ws_url="ws://127.0.0.1:9", binance_rest_url="http://127.0.0.1:9", binance_rotate_after=600.5,
    stall_ticker=1.5, stall_kline=2.5, stall_depth=0.75, stall_trades_min=3.0,
    replay_file=CAPTURE, replay_speed=2.5, replay_loop=True,
    role="gateway", redis_url="redis://127.0.0.1:6390/2", redis_prefix="tw-test", workers=3, reuse_port=True,
    backlog=77,
    jwt_secret="s" * 32, jwt_public_key="/keys/pub.pem", jwt_issuer="issuer", jwt_audience="aud",
    jwt_algorithms=("HS256", "RS256"), api_keys=("k1", "k2"), api_keys_file="/keys/api",
    max_publish_size=4096, max_connections=0, max_connections_per_ip=3,
    allowed_origins=("https://a.example", "https://b.example"),
    trusted_proxies=("10.0.0.0/8", "192.0.2.1/32"),
    protect_stats=True,
)  # fmt: skip
"""Every setting away from its default (the per-child ones too, to show they are left out)."""

SECRET_FILE = replace(UNUSUAL, jwt_secret=None, jwt_secret_file="/keys/jwt")
"""The one setting UNUSUAL cannot hold with it (a secret and a secret file are exclusive)."""


@pytest.mark.parametrize("settings", [UNUSUAL, SECRET_FILE], ids=["secret", "secret-file"])
def test_every_setting_round_trips_through_the_environment(settings: Settings) -> None:
    env = _env_of(settings)
    defaults = Settings()
    expected = replace(settings, **{name: getattr(defaults, name) for name in PER_CHILD})
    assert settings_from(None, env) == expected


def test_the_per_child_settings_stay_out_of_the_environment() -> None:
    env = _env_of(UNUSUAL)
    assert {opt.env for opt in OPTIONS if opt.field in PER_CHILD}.isdisjoint(env)
    assert all(key.startswith("TICKWIRE_") for key in env)


def test_unset_settings_are_left_out_rather_than_written_as_none() -> None:
    env = _env_of(Settings())
    assert "TICKWIRE_REDIS_URL" not in env and "TICKWIRE_JWT_SECRET" not in env
    assert "None" not in env.values()
    assert settings_from(None, env) == Settings()


def test_the_round_trip_covers_every_setting() -> None:
    """A new setting fails here until UNUSUAL gives it a value of its own, so the round trip checks it."""
    defaults = Settings()
    same = [
        f.name
        for f in dataclasses.fields(Settings)
        if getattr(UNUSUAL, f.name) == getattr(defaults, f.name)
        and getattr(SECRET_FILE, f.name) == getattr(defaults, f.name)
    ]
    assert same == []
