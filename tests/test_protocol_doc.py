"""docs/protocol.md names every message type, error code and close code the code defines.

The lists come from the code (msgspec struct tags, the client-type table, the
enums), so a new type or code without its documentation fails here.
"""

from __future__ import annotations

import enum
import gc
import re
import typing
from pathlib import Path

import msgspec
import pytest

from tickwire import protocol
from tickwire.channels import MESSAGE_TYPE
from tickwire.client import messages
from tickwire.errors import CloseCode, ErrorCode


ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"


def struct_tags(types: typing.Iterable[type]) -> set[str]:
    """The ``type`` tags of msgspec structs (the wire name of each message)."""
    tags = set()
    for cls in types:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType), cls
        assert info.tag_field == "type" and isinstance(info.tag, str), cls
        tags.add(info.tag)
    return tags


def server_types() -> set[str]:
    """Every ``type`` the gateway sends, from both sides of the code."""
    encoded = struct_tags(protocol._Out.__subclasses__())  # what protocol.py encodes
    published = set(MESSAGE_TYPE.values())  # publish-API and market messages by channel kind
    decoded = struct_tags(typing.get_args(messages.ServerMessage))  # what the client library decodes
    return encoded | published | decoded


def client_types() -> set[str]:
    """Every ``type`` the gateway accepts: the parser's table."""
    return set(protocol._CLIENT_TYPES)


def documented_types(text: str) -> set[str]:
    """``type`` values in the doc's JSON frames."""
    return set(re.findall(r'"type":\s*"(\w+)"', text))


def table_rows(text: str, heading: str) -> list[str]:
    """First cells of the table under ``## heading`` (to the next heading)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^#)", text, re.S | re.M)
    assert match, f"docs/protocol.md lost its '## {heading}' section"
    cells = re.findall(r"^\| ([^|]+?) \|", match.group(1), re.M)
    return [c.strip("` ") for c in cells if c not in ("code",) and not set(c) <= {"-"}]


def missing(text: str) -> dict[str, set[str]]:
    """What the code defines and the doc does not show."""
    errors = table_rows(text, "Errors")
    closes = table_rows(text, "Close codes")
    return {
        "server->client types": server_types() - documented_types(text),
        "client->server types": client_types() - documented_types(text),
        "error codes": {c.value for c in ErrorCode} - set(errors),
        "close codes": {str(int(c)) for c in CloseCode} - set(closes),
    }


def test_the_lists_come_from_the_code() -> None:
    # guards against a derivation that silently yields nothing
    assert {"connected", "subscribed", "error", "status", "price", "kline", "order"} <= server_types()
    assert client_types() == {"subscribe", "unsubscribe", "ping", "auth", "list"}
    # the parser's table and the union of client message structs name the same messages
    assert client_types() == {cls.__name__.lower() for cls in typing.get_args(protocol.ClientMessage)}
    assert "gap" not in server_types() and "disconnected" not in server_types()  # made by the client


def test_protocol_doc_names_every_type_and_code() -> None:
    gaps = missing(DOC.read_text())
    assert not any(gaps.values()), f"docs/protocol.md does not document: {gaps}"


def test_protocol_doc_tables_name_only_real_codes() -> None:
    text = DOC.read_text()
    assert set(table_rows(text, "Errors")) <= {c.value for c in ErrorCode}
    assert set(table_rows(text, "Close codes")) <= {str(int(c)) for c in CloseCode}


def test_a_new_code_or_type_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: a code or type the doc lacks is reported."""
    text = DOC.read_text()
    # mypy reads only literal member lists in the functional enum API, hence the ignores
    errors = [*((c.name, c.value) for c in ErrorCode), ("FAKE", "FAKE_CODE")]
    fake_errors = enum.StrEnum("ErrorCode", errors)  # type: ignore[misc]
    monkeypatch.setattr(f"{__name__}.ErrorCode", fake_errors)
    closes = [*((c.name, c.value) for c in CloseCode), ("FAKE", 4999)]
    fake_closes = enum.IntEnum("CloseCode", closes)  # type: ignore[misc]
    monkeypatch.setattr(f"{__name__}.CloseCode", fake_closes)
    monkeypatch.setitem(protocol._CLIENT_TYPES, "fakeclient", protocol.Ping)

    class _Fake(protocol._Out, tag="fakeserver"):  # type: ignore[misc]  # a msgspec Struct, not a dataclass
        pass

    try:
        gaps = missing(text)
    finally:
        del _Fake
        gc.collect()  # drop the class from protocol._Out.__subclasses__()
    assert gaps["error codes"] == {"FAKE_CODE"}
    assert gaps["close codes"] == {"4999"}
    assert gaps["server->client types"] == {"fakeserver"}
    assert gaps["client->server types"] == {"fakeclient"}


def test_docs_link_the_protocol_and_nothing_outside_the_repository() -> None:
    docs = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in docs:
        text = path.read_text()
        for outside in ("PROTOCOL.md of the platform", "../shared", "shared/", "DESIGN.md", "STYLE.md"):
            assert outside not in text, f"{path.name} points outside the repository: {outside!r}"
        assert not re.search(r"(?<![\w/])PROTOCOL\.md", text), f"{path.name}: link docs/protocol.md instead"
    for name in ("README.md", "docs/core.md", "docs/client.md", "docs/security.md"):
        assert "protocol.md" in (ROOT / name).read_text(), f"{name} does not link docs/protocol.md"
