"""exchangeInfo filters: the book engine's precisions and the symbol list read them the same way."""

from __future__ import annotations

import json

from tickwire.marketdata import Precision
from tickwire.sources.binance.bookparse import SymbolFilter, parse_exchange_facts, tick_and_step
from tickwire.sources.binance.history import parse_symbols


def _symbol(name: str, filters: list[dict[str, str]]) -> dict[str, object]:
    return {
        "symbol": name,
        "status": "TRADING",
        "baseAsset": name[:3],
        "quoteAsset": name[3:],
        "filters": filters,
    }


INFO = json.dumps(
    {
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
        ],
        "symbols": [
            _symbol(
                "ETHBTC",
                [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.00001000", "minPrice": "0.00001000"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.00010000"},
                ],
            ),
            _symbol("BNBUSDT", [{"filterType": "PRICE_FILTER", "tickSize": "0.10000000"}]),
        ],
    }
).encode()


def test_tick_and_step_take_the_two_filters_and_none_when_missing() -> None:
    filters = [
        SymbolFilter("PERCENT_PRICE"),
        SymbolFilter("LOT_SIZE", stepSize="0.00100000"),
        SymbolFilter("PRICE_FILTER", tickSize="0.01000000"),
    ]
    assert tick_and_step(filters) == ("0.01000000", "0.00100000")
    assert tick_and_step([SymbolFilter("PRICE_FILTER", tickSize="0.1")]) == ("0.1", None)
    assert tick_and_step([SymbolFilter("PRICE_FILTER", tickSize="")]) == (None, None)


def test_the_book_precisions_and_the_symbol_list_agree_and_differ_only_on_a_missing_filter() -> None:
    facts = parse_exchange_facts(INFO)
    assert facts.weight_per_minute == 6000
    assert facts.precisions == {"ETHBTC": (5, 4)}  # BNBUSDT lacks LOT_SIZE: from its snapshot instead
    symbols = {s.symbol: s.precision for s in parse_symbols(INFO)}
    assert symbols == {"ETHBTC": Precision(5, 4), "BNBUSDT": Precision(1, 8)}  # 8: Binance's number format
