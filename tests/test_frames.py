"""tickwire.frames: server text frames at every payload-length boundary of RFC 6455 section 5.2,
read back by the tests' decoder and by a real WebSocket client."""

from __future__ import annotations

import json

import aiohttp
import msgspec
import pytest

from tickwire.channels import parse_channel
from tickwire.frames import text_frame
from tickwire.protocol import encode_publication

from .helpers import TIMEOUT, Client, Running, decode_frames, frame_payloads, publish_now


def payload_of(n: int) -> bytes:
    """A JSON object of exactly ``n`` bytes."""
    data = b'{"p":"' + b"x" * (n - 8) + b'"}'
    assert len(data) == n
    return data


@pytest.mark.parametrize(
    ("n", "header"),
    [
        (8, b"\x81\x08"),
        (125, b"\x81\x7d"),  # the longest 7-bit length
        (126, b"\x81\x7e\x00\x7e"),  # 126 marks a 16-bit length
        (65535, b"\x81\x7e\xff\xff"),  # the longest 16-bit length
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),  # 127 marks a 64-bit length
    ],
)
def test_header_and_length_at_each_boundary(n: int, header: bytes) -> None:
    payload = payload_of(n)
    frame = text_frame(payload)
    assert frame == header + payload  # final text frame, unmasked, shortest length form
    assert decode_frames(frame) == [json.loads(payload)]


def test_frames_written_back_to_back_split_again() -> None:
    sizes = [125, 126, 65535, 65536, 8, 70_000]
    payloads = [payload_of(n) for n in sizes]
    data = b"".join(text_frame(p) for p in payloads)
    assert frame_payloads(data) == payloads
    assert [len(m["p"]) for m in decode_frames(data)] == [n - 8 for n in sizes]


@pytest.mark.parametrize(
    "bad",
    [
        text_frame(payload_of(300))[:-1],  # cut short
        b"\x01\x02{}",  # not final
        b"\x82\x02{}",  # binary
        b"\x81\x82abcd{}",  # masked: a server never masks
    ],
)
def test_the_decoder_refuses_what_a_server_frame_cannot_be(bad: bytes) -> None:
    with pytest.raises(AssertionError):
        frame_payloads(bad)


def signal_data(pad: int) -> msgspec.Raw:
    return msgspec.Raw(b'{"pad":"' + b"y" * pad + b'"}')


@pytest.mark.parametrize("length", [125, 126, 65535, 65536])
async def test_a_real_client_reads_every_length(running: Running, length: int) -> None:
    """The hub frames a publication with text_frame; aiohttp's reader must agree at each boundary."""
    channel = parse_channel("signals:BTCUSDT")
    kind, name, symbol = channel.message_type, channel.name, channel.symbol
    envelope = len(encode_publication(kind, name, 1, signal_data(0), symbol=symbol))
    async with Client.connect(running.ws_url) as client:
        await client.subscribe(name)
        assert publish_now(running.gateway, channel, signal_data(length - envelope)) == 1
        while True:
            msg = await client.ws.receive(timeout=TIMEOUT)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            if '"seq":1' in msg.data:
                break
    assert len(msg.data.encode()) == length
    assert json.loads(msg.data)["data"]["pad"] == "y" * (length - envelope)
