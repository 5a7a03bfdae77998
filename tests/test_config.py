"""Settings: defaults, a ``TICKWIRE_*`` twin for every flag, precedence, and one line per bad value."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import pytest

from tickwire.config import OPTIONS, Option, Settings, add_options, settings_from
from tickwire.errors import ConfigError


def parse(argv: list[str], env: Mapping[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_options(parser)
    return settings_from(parser.parse_args(argv), env or {})


def refusal(argv: list[str], env: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as error:
        parse(argv, env)
    return str(error.value)


# -- defaults, twins, precedence --------------------------------------------------------


def test_no_flags_and_no_env_give_the_defaults() -> None:
    s = parse([])
    assert s == Settings()
    assert (s.host, s.port, s.source, s.role, s.redis_url) == ("127.0.0.1", 3000, "simulated", "all", None)
    assert (s.linger, s.max_queue, s.log_level, s.replay_loop) == (5.0, 1024, "info", False)


# Values for settings whose default does not suggest another (strings, lists, unset).
SAMPLES = {
    "host": "0.0.0.0",
    "source": "binance",
    "log_level": "debug",
    "log_format": "json",
    "binance_ws_url": "wss://example.test",
    "binance_rest_url": "https://example.test",
    "replay_file": "capture.jsonl.gz",
    "role": "gateway",
    "redis_url": "redis://10.0.0.2:6380/1",
    "redis_prefix": "other",
    "jwt_secret": "a-secret-of-the-test-0123456789-abcdef",
    "jwt_secret_file": "secret.txt",
    "jwt_public_key": "key.pem",
    "jwt_issuer": "issuer",
    "jwt_audience": "audience",
    "jwt_algorithms": "HS256",
    "api_keys": "another-key-0123456789",
    "api_keys_file": "keys.txt",
    "allowed_origins": "https://app.example.test",
    "trusted_proxies": "10.0.0.0/8",
    "history": "trades=5000,private=10",
}
# Cross-field rules (--role, --workers and --protect-stats need these) hold in every case.
BASE_ENV = {"TICKWIRE_REDIS_URL": "redis://127.0.0.1:6379/0", "TICKWIRE_API_KEYS": "base-key-0123456789"}


def sample(opt: Option) -> str:
    """A valid value for ``opt`` that differs from its default."""
    if opt.flag:
        return "true"
    if opt.field in SAMPLES:
        return SAMPLES[opt.field]
    default: Any = getattr(Settings(), opt.field)
    if opt.choices:
        return next(c for c in opt.choices if c != default)
    if isinstance(default, bool | int | float):
        return str(default * 2 or 1)
    return "sample"


@pytest.mark.parametrize("opt", OPTIONS, ids=[o.field for o in OPTIONS])
def test_every_flag_has_an_env_twin_and_both_give_the_same_value(opt: Option) -> None:
    raw = sample(opt)
    base = parse([], BASE_ENV)
    from_env = parse([], {**BASE_ENV, opt.env: raw})
    from_flag = parse([opt.cli] if opt.flag else [opt.cli, raw], BASE_ENV)
    assert opt.env == "TICKWIRE_" + opt.field.upper()
    assert getattr(from_env, opt.field) == getattr(from_flag, opt.field)
    assert getattr(from_env, opt.field) != getattr(base, opt.field)


def test_a_flag_wins_over_its_env_twin_which_wins_over_the_default() -> None:
    env = {"TICKWIRE_PORT": "4000", "TICKWIRE_LINGER": "2.5", "TICKWIRE_SOURCE": "binance"}
    s = parse([], env)
    assert (s.port, s.linger, s.source) == (4000, 2.5, "binance")
    s = parse(["--port", "4001", "--source", "simulated"], env)
    assert (s.port, s.linger, s.source) == (4001, 2.5, "simulated")


def test_a_bad_env_value_is_never_read_when_its_flag_is_given() -> None:
    assert parse(["--port", "4001"], {"TICKWIRE_PORT": "abc"}).port == 4001


def test_repeatable_flags_join_and_the_env_twin_takes_commas() -> None:
    keys = ("key-one-0123456789", "key-two-0123456789")
    assert parse(["--api-key", keys[0], "--api-keys", keys[1]]).api_keys == keys
    assert parse([], {"TICKWIRE_API_KEYS": f" {keys[0]}, ,{keys[1]} "}).api_keys == keys
    proxies = parse(["--trusted-proxy", "10.1.2.3/8", "--trusted-proxy", "::1"]).trusted_proxies
    assert proxies == ("10.0.0.0/8", "::1/128")


def test_switches_take_words_from_the_env() -> None:
    for word, value in (
        ("yes", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("0", False),
        ("", False),
    ):
        assert parse([], {"TICKWIRE_REPLAY_LOOP": word}).replay_loop is value
    assert parse(["--replay-loop"]).replay_loop is True


def test_secrets_stay_out_of_the_repr() -> None:
    s = parse(
        [], {"TICKWIRE_JWT_SECRET": "the-secret-value-0123456789", "TICKWIRE_API_KEYS": "key-0123456789"}
    )
    assert "the-secret-value" not in repr(s) and "key-0123456789" not in repr(s)


# -- one line per bad value -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        (["--port", "abc"], {}, "--port='abc': must be a port number, 0 to 65535"),
        (["--port", "70000"], {}, "--port='70000': must be a port number, 0 to 65535"),
        ([], {"TICKWIRE_PORT": "-1"}, "TICKWIRE_PORT='-1': must be a port number, 0 to 65535"),
        (["--seed", "1.5"], {}, "--seed='1.5': must be a whole number"),
        (["--linger", "abc"], {}, "--linger='abc': must be a number, 0 or more"),
        (["--linger", "-1"], {}, "--linger='-1': must be a number, 0 or more"),
        (["--linger", "nan"], {}, "--linger='nan': must be a number, 0 or more"),
        (["--rate", "0"], {}, "--rate='0': must be a number greater than 0"),
        (["--rate", "fast"], {}, "--rate='fast': must be a number greater than 0"),
        (["--rate", "nan"], {}, "--rate='nan': must be a number greater than 0"),
        (["--max-queue", "1.5"], {}, "--max-queue='1.5': must be a whole number greater than 0"),
        ([], {"TICKWIRE_MAX_QUEUE": "0"}, "TICKWIRE_MAX_QUEUE='0': must be a whole number greater than 0"),
        (["--max-connections", "-3"], {}, "--max-connections='-3': must be a whole number, 0 or more"),
        (["--max-connections", "many"], {}, "--max-connections='many': must be a whole number, 0 or more"),
        (["--source", "kraken"], {}, "--source='kraken': must be one of simulated, binance, replay"),
        ([], {"TICKWIRE_LOG_FORMAT": "xml"}, "TICKWIRE_LOG_FORMAT='xml': must be one of text, json"),
        ([], {"TICKWIRE_REPLAY_LOOP": "maybe"}, "TICKWIRE_REPLAY_LOOP='maybe': must be true or false"),
        (
            ["--binance-ws-url", "http://x"],
            {},
            "--binance-ws-url='http://x': must start with ws:// or wss://",
        ),
        (
            ["--binance-rest-url", "ftp://x"],
            {},
            "--binance-rest-url='ftp://x': must start with http:// or https://",
        ),
        (
            ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "nope"],
            {},
            "--trusted-proxies='10.0.0.0/8,nope': must be IP addresses or CIDR networks, comma-separated",
        ),
    ],
)
def test_a_bad_value_is_refused_with_the_setting_and_the_expected_kind(
    argv: list[str], env: dict[str, str], line: str
) -> None:
    assert refusal(argv, env) == line


def test_no_converter_leaks_a_python_name_into_the_message() -> None:
    for opt in OPTIONS:
        if opt.flag or opt.choices:
            continue
        try:
            parse([opt.cli, "\x00not valid\x00"], BASE_ENV)
        except ConfigError as error:
            text = str(error)
            assert text.startswith(f"{opt.cli}=") and ": must " in text, text
            assert "_" not in text.split(": ", 1)[1], text  # no function name such as _non_negative


# -- rules across settings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        (["--source", "replay"], {}, "--source replay needs --replay-file (env TICKWIRE_REPLAY_FILE)"),
        (
            ["--source", "replay", "--replay-file", "/nonexistent/capture.gz"],
            {},
            "--replay-file='/nonexistent/capture.gz': no such file",
        ),
        (["--burst", "0.5"], {}, "--burst=0.5: must be at least 1"),
        (["--role", "gateway"], {}, "--role gateway needs --redis-url (env TICKWIRE_REDIS_URL)"),
        (["--workers", "2"], {}, "--workers 2 needs --redis-url (env TICKWIRE_REDIS_URL)"),
        (
            ["--workers", "2", "--role", "ingest"],
            {"TICKWIRE_REDIS_URL": "redis://127.0.0.1:6379/0"},
            "--workers 2 runs its own roles; leave --role at all",
        ),
        (
            ["--redis-url", "http://127.0.0.1:6379"],
            {},
            "--redis-url='http://127.0.0.1:6379': must start with redis://, rediss:// or unix://",
        ),
        (
            ["--jwt-secret", "x" * 32, "--jwt-secret-file", "secret.txt"],
            {},
            "--jwt-secret and --jwt-secret-file: give one, not both",
        ),
        (["--protect-stats"], {}, "--protect-stats needs an API key (--api-key, --api-keys-file)"),
    ],
)
def test_rules_across_settings_refuse_with_one_line(argv: list[str], env: dict[str, str], line: str) -> None:
    assert refusal(argv, env) == line


def test_a_replay_file_is_only_checked_for_the_replay_source() -> None:
    assert parse(["--replay-file", "/nonexistent/capture.gz"]).replay_file == "/nonexistent/capture.gz"
