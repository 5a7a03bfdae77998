"""The layers (README "Code map", docs/core.md), checked on the import statements of every module.

Each rule names a layer (module prefixes) and what it must not import
(module prefixes). Imports are read with :mod:`ast`, so an import inside a
function or under ``if TYPE_CHECKING:`` counts too: a type-level import is
still a dependency. Relative imports are resolved to absolute names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import tickwire


SRC = Path(tickwire.__file__).parent

# The pure core: wire messages, channel grammar, events, and the parsers that
# turn venue payloads into events. No I/O and nothing above it.
CORE = (
    "tickwire.protocol",
    "tickwire.channels",
    "tickwire.events",
    "tickwire.errors",
    "tickwire.frames",
    "tickwire.publications",
    "tickwire.backoff",
    "tickwire.ratelimit",
    "tickwire.health",
    "tickwire.outbox",
    "tickwire.throttle",
    "tickwire.orderbook",
    "tickwire.bookview",
    "tickwire.history",
    "tickwire.backlog",
    "tickwire.resume",
    "tickwire.sources.market",
    "tickwire.sources.simbook",
    "tickwire.sources.binance.parse",
    "tickwire.sources.binance.bookparse",
    "tickwire.sources.binance.ladder",
    "tickwire.sources.binance.book",
    "tickwire.sources.binance.gaps",
)

IO = ("asyncio", "aiohttp", "redis", "socket")
# one client's session: the core class and its subscribe and identity mixins
SESSION = ("tickwire.session", "tickwire.subscriptions", "tickwire.identity")
ABOVE_CORE = (
    "tickwire.hub",
    *SESSION,
    "tickwire.ticker",
    "tickwire.ingest",
    "tickwire.books",
    "tickwire.node",
    "tickwire.server",
    "tickwire.sources",
    "tickwire.bus",
    "tickwire.client",
    "tickwire.tools",
    "tickwire.cli",
)


@dataclass(frozen=True)
class Rule:
    """Modules under ``layer`` must not import anything under ``forbidden``, except ``allowed``."""

    name: str
    layer: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


RULES = (
    # the core may import the core (the parse modules live under sources/)
    Rule("pure core", CORE, IO + ABOVE_CORE, allowed=CORE),
    Rule(
        "sources",
        ("tickwire.sources",),
        (
            *SESSION,
            "tickwire.server",
            "tickwire.hub",
            "tickwire.node",
            "tickwire.ingest",
            "tickwire.books",
        ),
    ),
    Rule(
        "client",
        ("tickwire.client",),
        (
            "tickwire.server",
            "tickwire.hub",
            *SESSION,
            "tickwire.node",
            "tickwire.sources",
            "tickwire.bus",
            "tickwire.ingest",
            "tickwire.tools",
        ),
    ),
    Rule(
        "bus",
        ("tickwire.bus",),
        ("tickwire.sources", "tickwire.hub", *SESSION, "tickwire.server", "tickwire.node"),
    ),
)


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported} ({self.rule} rule)"


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_name(path: Path, root: Path = SRC) -> tuple[str, bool]:
    """(dotted name of the module at ``path``, whether it is a package's ``__init__``)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imports_of(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """Every (line, absolute module name) ``source`` imports, anywhere in it.

    ``from x import y`` gives ``x.y`` (y may be a submodule or a name in x;
    a prefix rule on x matches either way).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package) - (node.level - 1)
                if keep < 1:
                    raise ValueError(f"{module}:{node.lineno}: relative import beyond the top package")
                parts = [*package[:keep], *(node.module.split(".") if node.module else [])]
            else:
                assert node.module is not None
                parts = node.module.split(".")
            found.extend((node.lineno, ".".join([*parts, alias.name])) for alias in node.names)
    return found


def check_module(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """The imports of ``source`` (the module ``module``) that break a rule of RULES."""
    violations: list[Violation] = []
    for line, imported in imports_of(source, module, is_package=is_package):
        for rule in RULES:
            if under(module, rule.layer) and under(imported, rule.forbidden):
                if not under(imported, rule.allowed):
                    violations.append(Violation(module, line, imported, rule.name))
                    break  # one report per import, from the first rule it breaks
    return violations


def check_tree(root: Path) -> tuple[int, list[Violation]]:
    """(modules read, violations) for the package at ``root``."""
    violations: list[Violation] = []
    paths = sorted(root.rglob("*.py"))
    for path in paths:
        module, is_package = module_name(path, root)
        violations += check_module(path.read_text(), module, is_package=is_package)
    return len(paths), violations


def test_the_tree_keeps_its_layers() -> None:
    checked, violations = check_tree(SRC)
    assert checked > 40, "the walk found the package's modules"
    assert [str(v) for v in violations] == []


def test_a_forbidden_import_in_a_file_fails_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "tickwire"
    (root / "sources" / "binance").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sources" / "__init__.py").write_text("from .base import Source\n")
    (root / "sources" / "binance" / "parse.py").write_text(
        "from __future__ import annotations\n\ndef later() -> None:\n    from ...hub import Hub\n"
    )
    checked, violations = check_tree(root)
    assert checked == 3
    assert [str(v) for v in violations] == [
        "tickwire.sources.binance.parse:4 imports tickwire.hub.Hub (pure core rule)"
    ]


def test_every_core_module_named_exists_or_is_optional() -> None:
    # a renamed core module would silently drop out of the rule
    missing = [m for m in CORE if not (SRC.parent / (m.replace(".", "/") + ".py")).exists()]
    assert set(missing) <= {"tickwire.outbox"}, missing


@pytest.mark.parametrize(
    ("module", "source", "imported"),
    [
        ("tickwire.protocol", "import asyncio\n", "asyncio"),
        ("tickwire.channels", "from aiohttp import web\n", "aiohttp.web"),
        ("tickwire.frames", "def f():\n    import redis.asyncio\n", "redis.asyncio"),
        (
            "tickwire.events",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .hub import Hub\n",
            "tickwire.hub.Hub",
        ),
        ("tickwire.sources.market", "from ..bus.memory import MemoryBus\n", "tickwire.bus.memory.MemoryBus"),
        ("tickwire.sources.binance.parse", "from ... import session\n", "tickwire.session"),
        ("tickwire.sources.binance.source", "from ...node import Node\n", "tickwire.node.Node"),
        ("tickwire.sources.replay", "from ..server.app import Gateway\n", "tickwire.server.app.Gateway"),
        ("tickwire.client.feed", "from ..hub import Hub\n", "tickwire.hub.Hub"),
        ("tickwire.client.messages", "import tickwire.bus\n", "tickwire.bus"),
        ("tickwire.bus.redis", "from ..sources.base import Source\n", "tickwire.sources.base.Source"),
    ],
)
def test_a_forbidden_import_is_reported(module: str, source: str, imported: str) -> None:
    violations = check_module(source, module)
    assert [v.imported for v in violations] == [imported]
    assert violations[0].module == module


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("tickwire.sources.binance.parse", "from ...channels import Channel\nfrom ..market import Market\n"),
        ("tickwire.sources.market", "from ..events import Trade\n"),
        ("tickwire.bus.base", "from ..health import SourceHealth\n"),
        ("tickwire.client.feed", "import asyncio\nfrom ..protocol import encode_event\n"),
        ("tickwire.hub", "import asyncio\nfrom .bus.base import Bus\n"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert check_module(source, module) == []


def test_relative_imports_resolve_from_packages_and_modules() -> None:
    bus = [(1, "tickwire.bus.base.Bus")]
    assert imports_of("from .base import Bus\n", "tickwire.bus", is_package=True) == bus
    assert imports_of("from .base import Bus\n", "tickwire.bus.redis") == bus
    assert imports_of("from .. import hub\n", "tickwire.bus.redis") == [(1, "tickwire.hub")]
    with pytest.raises(ValueError, match="beyond the top package"):
        imports_of("from .... import x\n", "tickwire.bus.redis")


def test_module_names_follow_the_files() -> None:
    assert module_name(SRC / "bus" / "__init__.py") == ("tickwire.bus", True)
    assert module_name(SRC / "sources" / "binance" / "parse.py") == ("tickwire.sources.binance.parse", False)
