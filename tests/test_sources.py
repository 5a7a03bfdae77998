"""The source registry: the one place a source is named, for ``--source``, make_source and health."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.config import OPTIONS, Settings, replace
from tickwire.sources import SOURCE_NAMES, SourceKind, make_source, source_class


CAPTURE = str(Path(__file__).parent / "data" / "binance" / "session.capture.jsonl")

KINDS = {"simulated": SourceKind.SIMULATED, "replay": SourceKind.REPLAY, "binance": SourceKind.LIVE}


def test_the_source_flag_offers_exactly_the_registered_names() -> None:
    (source,) = [opt for opt in OPTIONS if opt.field == "source"]
    assert source.choices == SOURCE_NAMES
    assert set(SOURCE_NAMES) == set(KINDS)
    assert Settings().source in SOURCE_NAMES


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_each_class_carries_its_registered_name_and_kind(name: str) -> None:
    cls = source_class(name)
    assert cls.name == name
    assert cls.kind is KINDS[name]


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_make_source_builds_the_named_source_without_connecting(name: str) -> None:
    settings = replace(
        Settings(),
        source=name,
        replay_file=CAPTURE,
        binance_ws_url="ws://127.0.0.1:9",  # never reached: the source is built, not run
        binance_rest_url="http://127.0.0.1:9",
    )
    source = make_source(settings)
    registered: object = source_class(name)
    assert type(source) is registered
    assert source.name == name and source.kind is KINDS[name]
    assert source.health().source == name
    assert source.streams() == []  # nothing opened yet


def test_an_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        source_class("kraken")
    with pytest.raises(KeyError):
        make_source(replace(Settings(), source="kraken"))
