"""Market data over HTTP (docs/protocol.md, "Market data over HTTP"): candles and symbols from the source.

``GET /api/v1/klines?symbol=BTCUSDT&interval=1m&limit=500[&endTime=ms]``
answers ``{"success":true,"data":[<kline data>, ...]}`` oldest first;
``GET /api/v1/symbols`` answers ``{"success":true,"data":[<symbol>, ...]}``.
Errors have the publish API's shape: 400 for a bad symbol, interval, limit
or endTime, 503 (with ``Retry-After`` when known) while the upstream cannot
answer. The symbol and interval go through the channel grammar, so they
are read exactly as ``klines:SYMBOL:INTERVAL`` is on the WebSocket.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from ..channels import parse_channel
from ..errors import ErrorCode, ProtocolError
from ..marketdata import DEFAULT_LIMIT, MAX_LIMIT, MarketDataUnavailable, kline_data
from ..sources.base import Source
from .publish import error_response


__all__ = ["MarketApi", "add_market_routes"]

logger = logging.getLogger("tickwire.server")

_encoder = msgspec.json.Encoder(decimal_format="number")  # prices as JSON numbers, as on the WebSocket


class _BadQuery(Exception):
    pass


def _int(query: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = query.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise _BadQuery(f"{name} must be {low} to {high:,}, got {value}")
    return value


class MarketApi:
    """The two routes over one source."""

    def __init__(self, source: Source) -> None:
        self.source = source

    async def klines(self, request: web.Request) -> web.Response:
        try:
            symbol = request.query.get("symbol", "")
            interval = request.query.get("interval", "")
            if not symbol or not interval:
                raise _BadQuery("symbol and interval are required, e.g. ?symbol=BTCUSDT&interval=1m")
            limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            end_time = _int(request, "endTime", None, 0, 2**53)
            channel = parse_channel(f"klines:{symbol}:{interval}")
            assert channel.symbol is not None and channel.interval is not None and limit is not None
            await self.source.validate(channel)
            candles = await self.source.klines(
                channel.symbol, channel.interval, limit=limit, end_time=end_time
            )
        except _BadQuery as exc:
            return error_response(400, ErrorCode.INVALID_MESSAGE, str(exc))
        except ProtocolError as exc:
            return error_response(400, exc.code, exc.message)
        except MarketDataUnavailable as exc:
            return _unavailable(exc)
        return _ok([kline_data(c) for c in candles])

    async def symbols(self, request: web.Request) -> web.Response:
        try:
            symbols = await self.source.symbols()
        except MarketDataUnavailable as exc:
            return _unavailable(exc)
        return _ok(symbols)


def _ok(data: object) -> web.Response:
    body = _encoder.encode({"success": True, "data": data})
    return web.Response(body=body, content_type="application/json")


def _unavailable(exc: MarketDataUnavailable) -> web.Response:
    logger.info("market data unavailable: %s", exc.message)
    response = error_response(503, "UNAVAILABLE", exc.message)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


def add_market_routes(app: web.Application, source: Source) -> MarketApi:
    """Add ``/api/v1/klines`` and ``/api/v1/symbols`` to ``app``."""
    api = MarketApi(source)
    app.router.add_get("/api/v1/klines", api.klines)
    app.router.add_get("/api/v1/symbols", api.symbols)
    return api
