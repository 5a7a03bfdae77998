"""The Redis bus's wire layout, pure: message bytes, publish-API templates and key names."""

from __future__ import annotations

import pytest

from tickwire.bus.redis._wire import (
    SENTINEL,
    Keys,
    as_bytes,
    decode_message,
    encode_publication,
    encode_status,
    split_template,
)
from tickwire.publications import ChannelStatus, Publication


def test_publication_bytes_are_the_documented_layout() -> None:
    pub = Publication("price:BTCUSDT", 42, b'{"seq":42}', True, 1_700_000_000_123)
    assert encode_publication(pub) == b'P42\n1\n1700000000123\nprice:BTCUSDT\n{"seq":42}'
    assert decode_message(encode_publication(pub)) == pub


def test_status_bytes_are_the_documented_layout() -> None:
    stale = ChannelStatus("ticker:ETHUSDT", False, "upstream stalled", 1_700_000_000_000)
    assert encode_status(stale) == b"S0\n1700000000000\nticker:ETHUSDT\nupstream stalled"
    live = ChannelStatus("ticker:ETHUSDT", True, None, 5)
    assert encode_status(live) == b"S1\n5\nticker:ETHUSDT\n"
    assert decode_message(encode_status(live)) == live  # an empty reason comes back as None


def test_a_live_status_with_a_gap_round_trips_and_old_layouts_still_read() -> None:
    gap = ChannelStatus("trades:BTCUSDT", True, None, 5, (1001, 2040))
    assert encode_status(gap) == b"S1\n5 1001 2040\ntrades:BTCUSDT\n"
    assert decode_message(encode_status(gap)) == gap
    # what a gateway without gaps wrote reads the same, and gap-less statuses are unchanged bytes
    assert decode_message(b"S1\n5\ntrades:BTCUSDT\n") == ChannelStatus("trades:BTCUSDT", True, None, 5)
    with pytest.raises(ValueError):
        decode_message(b"S1\n5 1001\ntrades:BTCUSDT\n")


def test_payload_and_reason_may_hold_newlines() -> None:
    pub = Publication("trade:BTCUSDT", 1, b"line one\nline two\n", False, 0)
    assert decode_message(encode_publication(pub)) == pub
    status = ChannelStatus("kline:BTCUSDT:1m", False, "why\nand more", 7)
    assert decode_message(encode_status(status)) == status


@pytest.mark.parametrize("data", [b"", b"X1\n2", b"P1\n0\n5"])
def test_other_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_message(data)


def test_template_is_cut_around_the_seq() -> None:
    def encode(seq: int) -> bytes:
        return b'{"type":"data","channel":"signals:x","seq":%d,"data":{"n":1}}' % seq

    head, tail = split_template(encode(SENTINEL))
    assert head == b'{"type":"data","channel":"signals:x","seq":'
    assert head + b"17" + tail == encode(17)  # what the Lua script builds with the seq it drew


def test_template_without_a_seq_field_is_refused() -> None:
    with pytest.raises(ValueError, match="seq"):
        split_template(b'{"type":"data","seq":1}')


def test_keys_share_a_hash_slot_per_channel() -> None:
    keys = Keys("tw", "binance")
    channel = "kline:BTCUSDT:1m"
    assert keys.seq(channel) == "tw:{kline:BTCUSDT:1m}:seq"
    assert keys.last(channel) == "tw:{kline:BTCUSDT:1m}:last"
    assert keys.status(channel) == "tw:{kline:BTCUSDT:1m}:status"
    assert (keys.demand, keys.lock, keys.ingest, keys.symbols) == (
        "tw:demand",
        "tw:lock:binance",
        "tw:ingest:binance",
        "tw:symbols:binance",
    )
    assert keys.node("host-1-abc") == "tw:node:host-1-abc"


def test_pubsub_names_and_leases_round_trip() -> None:
    keys = Keys("tw", "simulated")
    channel = "kline:BTCUSDT:1m"  # channel names contain colons; node ids never do
    assert keys.channel_of(keys.pub(channel)) == channel
    assert keys.channel_of("tw:demand") is None
    assert keys.channel_of("other:pub:price:BTCUSDT") is None
    lease = keys.lease("host-1-abc", channel)
    assert lease.startswith(keys.lease_prefix)
    assert keys.parse_lease(lease) == ("host-1-abc", channel)


def test_values_read_from_redis_become_bytes() -> None:
    assert as_bytes(b"P1") == b"P1"
    assert as_bytes("S1") == b"S1"
