"""Every module's ``__all__`` names what it defines, and nothing it lacks."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tickwire


MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(tickwire.__path__, prefix="tickwire.")
    if name != "tickwire.__main__"
)


@pytest.mark.parametrize("name", ["tickwire", *MODULES])
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not define: {missing}"


def test_package_reexports_the_public_core() -> None:
    assert tickwire.parse_channel("price:btcusdt").name == "price:BTCUSDT"
    assert tickwire.ErrorCode.RATE_LIMITED.value == "RATE_LIMITED"
    assert int(tickwire.CloseCode.SLOW_CONSUMER) == 4008
