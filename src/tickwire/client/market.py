"""Market data over HTTP from the client: ``/api/v1/klines`` and ``/api/v1/symbols`` of the gateway.

The HTTP base is the feed's WebSocket URL with its scheme swapped
(``ws://host:port/ws`` -> ``http://host:port``). Answers decode into the
same structs the gateway encodes: :class:`~tickwire.protocol.KlineData`
(the ``data`` of a ``kline`` message) and :class:`~tickwire.marketdata.SymbolInfo`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec

from ..marketdata import SymbolInfo
from ..messages import KlineData
from .errors import ClientError


__all__ = ["MarketDataError", "fetch_klines", "fetch_symbols", "http_base"]


class MarketDataError(ClientError):
    """The gateway refused a market-data request (400) or could not answer it (503).

    Args:
        status: the HTTP status.
        code: the error code of the answer (``UNKNOWN_SYMBOL``, ``UNAVAILABLE``...).
        message: the gateway's explanation.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _Problem(msgspec.Struct):
    code: str
    message: str


class _Failure(msgspec.Struct):
    error: _Problem


class _Klines(msgspec.Struct):
    data: list[KlineData]


class _Symbols(msgspec.Struct):
    data: list[SymbolInfo]


def http_base(ws_url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port`` (``wss`` -> ``https``)."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


async def _get(
    http: aiohttp.ClientSession, url: str, params: dict[str, str], request_timeout: float
) -> bytes:
    async with http.get(url, params=params, timeout=aiohttp.ClientTimeout(total=request_timeout)) as resp:
        body = await resp.read()
        if resp.status == 200:
            return body
        try:
            problem = msgspec.json.decode(body, type=_Failure).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            problem = _Problem("HTTP", body[:200].decode("utf-8", "replace"))
        raise MarketDataError(resp.status, problem.code, problem.message)


async def fetch_klines(
    http: aiohttp.ClientSession,
    base: str,
    symbol: str,
    interval: str,
    *,
    limit: int | None = None,
    end_time: int | None = None,
    request_timeout: float = 10.0,
) -> list[KlineData]:
    """Candles oldest first; the last may be in progress (``isFinal`` false).

    Raises:
        MarketDataError: a 400 (bad symbol, interval or limit) or 503 answer.
        aiohttp.ClientError, TimeoutError: no answer.
    """
    params = {"symbol": symbol, "interval": interval}
    if limit is not None:
        params["limit"] = str(limit)
    if end_time is not None:
        params["endTime"] = str(end_time)
    body = await _get(http, base + "/api/v1/klines", params, request_timeout)
    return msgspec.json.decode(body, type=_Klines).data


async def fetch_symbols(
    http: aiohttp.ClientSession, base: str, *, request_timeout: float = 10.0
) -> list[SymbolInfo]:
    """Every symbol the gateway's source lists.

    Raises:
        MarketDataError: a 503 answer.
        aiohttp.ClientError, TimeoutError: no answer.
    """
    body = await _get(http, base + "/api/v1/symbols", {}, request_timeout)
    return msgspec.json.decode(body, type=_Symbols).data
