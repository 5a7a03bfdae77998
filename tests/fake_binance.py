"""A fake Binance Spot server for tests: WebSocket combined streams and REST, on 127.0.0.1 port 0.

It speaks the documented protocol (PROTOCOL-NOTES / web-socket-streams.md):
``/stream?streams=a/b``, ``{"stream","data"}`` frames, SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS with ids and both error forms, server pings, the 5
incoming messages per second limit (close 1008 "Too many requests"), a
connection lifetime, ``serverShutdown``; REST exchangeInfo, ticker/24hr,
klines, depth and recent trades with weights, ``X-MBX-USED-WEIGHT-1M`` and 429/418 with
``Retry-After``. ``<sym>@depth@100ms`` diffs and ``/api/v3/depth`` snapshots of
more than 10 levels come from one evolving book per symbol (:mod:`.fake_binance_book`,
with its own faults; ``depth_fail`` answers the next snapshot requests with
an error). Faults: abrupt drop, silent stall, refused connects,
garbage frames, forced closes, REST down (reset or 500).

A feeder task publishes the next payload of every subscribed stream every
``feed_interval`` seconds, to every connection that carries it, in the same
order, so de-duplication across connections can be checked exactly. With
``market_runs`` the market goes on while no connection carries a stream (every
stream ever subscribed keeps being generated), so a drop loses data that
REST (``/api/v3/trades``, and ``/api/v3/klines`` from the stream's own
candles) can give back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tickwire.sources.binance import BinanceSource
from tickwire.sources.binance.connection import ConnectionConfig
from tickwire.sources.binance.watchdog import StallThresholds

from .fake_binance_book import FakeBinanceBook
from .helpers import Client, Running, running_gateway, site_port


__all__ = ["FAST", "FakeBinance", "FakeConn", "Recorder", "binance_gateway", "fast_source"]

_STREAM = re.compile(
    r"[a-z0-9]+@(trade|ticker|kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)|depth10@100ms|depth@100ms)"
)
_INTERVAL_MS = {"1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class FakeConn:
    cid: int
    ws: web.WebSocketResponse
    request: web.Request
    streams: set[str]
    url_streams: list[str]
    opened: float = field(default_factory=time.monotonic)
    stalled: bool = False
    incoming: deque[float] = field(default_factory=deque)
    controls: list[dict[str, Any]] = field(default_factory=list)
    pongs: int = 0
    closed: bool = False
    close_code: int | None = None


class FakeBinance:
    """See the module docstring. Attributes are plain state tests read and set."""

    def __init__(
        self,
        *,
        max_streams: int = 1024,
        lifetime: float | None = None,
        ping_interval: float = 1.0,  # the venue: 20 s
        rate_limit: int = 5,
        feed_interval: float = 0.05,
        symbols: dict[str, str] | None = None,
        error_form: str = "nested",
        market_runs: bool = False,
    ) -> None:
        self.max_streams = max_streams
        self.lifetime = lifetime
        self.ping_interval = ping_interval
        self.rate_limit = rate_limit
        self.feed_interval = feed_interval
        self.symbols = symbols or {
            "BTCUSDT": "TRADING",
            "ETHUSDT": "TRADING",
            "BNBBTC": "TRADING",
            "LRCBTC": "TRADING",
            "XRPUSDT": "TRADING",
            "ADAUSDT": "TRADING",
            "SOLUSDT": "TRADING",
            "HALTUSDT": "HALT",
        }
        self.error_form = error_form
        self.market_runs = market_runs
        self.ever: set[str] = set()  # streams ever subscribed (fed while down with market_runs)
        self.trades: dict[str, deque[dict[str, Any]]] = {}  # symbol -> recent trades, REST shape
        self.candles: dict[tuple[str, str], dict[int, list[Any]]] = {}  # (symbol, interval) -> rows
        self.conns: list[FakeConn] = []
        self.connect_attempts = 0
        self.refuse = 0  # refuse this many next handshakes (HTTP 503)
        self.violations = 0  # connections closed with 1008 for the rate limit
        self.feeding = True
        self.paused: set[str] = set()  # streams the feeder skips
        self.reject_next: tuple[int, str] | None = None  # answer the next SUBSCRIBE with this error
        self.sent: dict[str, list[dict[str, Any]]] = {}  # stream -> payloads published, in order
        self.rest_log: list[tuple[float, str, dict[str, str], int]] = []
        self.rest_fail: list[tuple[int, float]] = []  # (status, retry-after) for the next requests
        self.rest_down: str | None = None  # every REST request: "reset" (no answer) or "500"
        self.trades_delay = 0.0  # seconds /api/v3/trades takes to answer
        self.weight_used = 0
        self.books: dict[str, FakeBinanceBook] = {}  # symbol -> its diff-depth book
        self.depth_fail: list[tuple[int, float]] = []  # (status, retry-after) for the next book snapshots
        self._counters: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # every task of the fake, cancelled by close()
        self._feeder_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None  # the delayed close of server_shutdown
        self._runner: web.AppRunner | None = None
        self.ws_url = ""
        self.rest_url = ""

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> FakeBinance:
        app = web.Application()
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/ticker/24hr", self._ticker_24hr)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/trades", self._trades)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site_port(site)
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.rest_url = f"http://127.0.0.1:{port}"
        self._feeder_task = self._spawn(self._feeder())
        return self

    async def __aenter__(self) -> FakeBinance:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.live_conns():
            if conn.request.transport is not None:
                conn.request.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def book(self, symbol: str) -> FakeBinanceBook:
        """The evolving order book of ``symbol`` (made on first use)."""
        if symbol not in self.books:
            self.books[symbol] = FakeBinanceBook(symbol)
        return self.books[symbol]

    # -- views for tests -------------------------------------------------------------

    def live_conns(self) -> list[FakeConn]:
        return [c for c in self.conns if not c.closed]

    def subscriptions(self) -> set[str]:
        """Every stream some open connection carries."""
        out: set[str] = set()
        for conn in self.live_conns():
            out |= conn.streams
        return out

    def control_messages(self) -> list[dict[str, Any]]:
        return [m for c in self.conns for m in c.controls]

    # -- faults ----------------------------------------------------------------------------

    def drop_all(self) -> None:
        """Abrupt drop: TCP reset, no close frame."""
        for conn in self.live_conns():
            conn.closed = True
            if conn.request.transport is not None:
                conn.request.transport.abort()

    def stall_all(self) -> None:
        """Silent stall: the sockets stay open, nothing is sent any more (not even pings)."""
        for conn in self.live_conns():
            conn.stalled = True

    async def close_all(self, code: int, message: str) -> None:
        for conn in self.live_conns():
            await self._close(conn, code, message)

    async def garbage(self, *frames: str | bytes) -> None:
        for conn in self.live_conns():
            for frame in frames:
                if isinstance(frame, bytes):
                    await conn.ws.send_bytes(frame)
                else:
                    await conn.ws.send_str(frame)

    async def server_shutdown(self, close_after: float) -> None:
        """``serverShutdown`` on every connection, then close them ``close_after`` s later."""
        conns = self.live_conns()
        frame = json.dumps({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": now_ms()}})
        for conn in conns:
            await conn.ws.send_str(frame)

        async def later() -> None:
            await asyncio.sleep(close_after)
            for conn in conns:
                await self._close(conn, 1001, "server shutdown")

        self._closer = self._spawn(later())

    # -- WebSocket -------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.connect_attempts += 1
        if self.refuse > 0:
            self.refuse -= 1
            return web.Response(status=503, text="refused by the test")
        raw = request.query.get("streams", "")
        streams = [s for s in raw.split("/") if s]
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        conn = FakeConn(len(self.conns) + 1, ws, request, set(streams), streams)
        self.conns.append(conn)
        pinger = self._spawn(self._pinger(conn))
        cutter = self._spawn(self._cut_after(conn)) if self.lifetime is not None else None
        try:
            async for msg in ws:
                if self._count_incoming(conn):
                    self.violations += 1
                    await self._close(conn, 1008, "Too many requests")
                    break
                if msg.type is WSMsgType.TEXT:
                    await self._control(conn, msg.data)
                elif msg.type is WSMsgType.PONG:
                    conn.pongs += 1
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
        finally:
            conn.closed = True
            conn.close_code = ws.close_code
            pinger.cancel()
            if cutter is not None:
                cutter.cancel()
        return ws

    def _count_incoming(self, conn: FakeConn) -> bool:
        now = time.monotonic()
        conn.incoming.append(now)
        while conn.incoming and conn.incoming[0] <= now - 1.0:
            conn.incoming.popleft()
        return len(conn.incoming) > self.rate_limit

    async def _close(self, conn: FakeConn, code: int, message: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.ws.close(code=code, message=message.encode()), 1.0)

    async def _pinger(self, conn: FakeConn) -> None:
        while not conn.closed:
            await asyncio.sleep(self.ping_interval)
            if not conn.stalled and not conn.closed:
                with contextlib.suppress(Exception):
                    await conn.ws.ping(str(now_ms()).encode())

    async def _cut_after(self, conn: FakeConn) -> None:
        assert self.lifetime is not None
        await asyncio.sleep(self.lifetime)
        await self._close(conn, 1001, "connection lifetime reached")

    async def _reply(self, conn: FakeConn, body: dict[str, Any]) -> None:
        if not conn.closed:
            await conn.ws.send_str(json.dumps(body))

    async def _error(self, conn: FakeConn, ident: Any, code: int, msg: str) -> None:
        if self.error_form == "flat":
            await self._reply(conn, {"code": code, "msg": msg, "id": ident})
        else:
            await self._reply(conn, {"error": {"code": code, "msg": msg}, "id": ident})

    async def _control(self, conn: FakeConn, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            await self._reply(conn, {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
            return
        conn.controls.append(req)
        ident = req.get("id")
        method = req.get("method")
        params = req.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            await self._reply(conn, {"result": sorted(conn.streams), "id": ident})
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if self.reject_next is not None and method == "SUBSCRIBE":
                code, msg = self.reject_next
                self.reject_next = None
                await self._error(conn, ident, code, msg)
                return
            if not all(isinstance(p, str) and _STREAM.fullmatch(p) for p in params):
                await self._error(conn, ident, 2, "Invalid request: invalid stream")
                return
            if method == "SUBSCRIBE":
                if len(conn.streams | set(params)) > self.max_streams:
                    await self._error(conn, ident, 4, "Too many subscriptions")
                    return
                conn.streams |= set(params)
            else:
                conn.streams -= set(params)
            await self._reply(conn, {"result": None, "id": ident})
        else:
            await self._reply(
                conn,
                {
                    "code": 2,
                    "msg": f"Invalid request: unknown variant {method}, expected one of `SUBSCRIBE`, "
                    "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 28",
                    "id": ident,
                },
            )

    # -- data ------------------------------------------------------------------------------------

    async def _feeder(self) -> None:
        while True:
            await asyncio.sleep(self.feed_interval)
            if not self.feeding:
                continue
            streams = self.subscriptions()
            if self.market_runs:
                self.ever |= streams
                streams = self.ever
            for stream in sorted(streams):
                if stream in self.paused:
                    continue
                if stream.endswith("@depth@100ms"):
                    diff = self.book(stream.partition("@")[0].upper()).next_diff()
                    if diff is not None:
                        await self.publish(stream, diff)
                    continue
                await self.publish(stream, self.next_payload(stream))

    async def publish(self, stream: str, payload: dict[str, Any]) -> None:
        """Send one payload to every connection carrying ``stream`` (not stalled)."""
        self.sent.setdefault(stream, []).append(payload)
        frame = json.dumps({"stream": stream, "data": payload}, separators=(",", ":"))
        for conn in self.live_conns():
            if stream in conn.streams and not conn.stalled:
                with contextlib.suppress(Exception):
                    await conn.ws.send_str(frame)

    def _next(self, name: str, start: int) -> int:
        value = self._counters.get(name, start - 1) + 1
        self._counters[name] = value
        return value

    def _stamp(self, stream: str) -> int:
        """An event time in ms, strictly increasing per stream."""
        t = max(now_ms(), self._counters.get(stream + "#E", 0) + 1)
        self._counters[stream + "#E"] = t
        return t

    def next_payload(self, stream: str) -> dict[str, Any]:
        symbol, _, kind = stream.partition("@")
        sym = symbol.upper()
        n = self._next(stream, 0)
        base = Decimal("61809.65000000") + Decimal(n % 13) * Decimal("0.01000000")
        if kind == "trade":
            t = now_ms()
            tid = self._next(stream + "#id", 3735683259)
            rows = self.trades.setdefault(sym, deque(maxlen=5000))
            rows.append({"id": tid, "price": str(base), "qty": "0.00123000", "quoteQty": "76.02587",
                         "time": t, "isBuyerMaker": n % 2 == 0, "isBestMatch": True})  # fmt: skip
            return {"e": "trade", "E": t, "s": sym, "t": tid, "p": str(base), "q": "0.00123000",
                    "T": t, "m": n % 2 == 0, "M": True}  # fmt: skip
        if kind == "ticker":
            return {
                "e": "24hrTicker", "E": self._stamp(stream), "s": sym, "p": "-94.99999800",
                "P": "-95.960", "w": "0.29628482", "x": "0.10002000", "c": str(base), "Q": "200.00000000",
                "b": "4.00000000", "B": "100.00000000", "a": "4.00000200", "A": "100.00000000",
                "o": "99.00000000", "h": "100.00000000", "l": "0.10000000", "v": "8913.30000000",
                "q": "15.30000000", "O": 1499783499040, "C": 1499869899040, "F": 28385, "L": 28460,
                "n": 76 + n,
            }  # fmt: skip
        if kind.startswith("kline_"):
            interval = kind[6:]
            step = _INTERVAL_MS.get(interval, 60_000)
            candle = self._counters.get(stream + "#candle", 1672515780000 // step)
            final = n % 10 == 0
            if final:
                self._counters[stream + "#candle"] = candle + 1
            t = candle * step
            self.candles.setdefault((sym, interval), {})[t] = [
                t, "0.00100000", "61900.00000000", "0.00100000", str(base), "1000.50000000", t + step - 1,
                "1.0000", 100 + n, "500", "0.500", "0"]  # fmt: skip
            return {
                "e": "kline", "E": self._stamp(stream), "s": sym,
                "k": {"t": t, "T": t + step - 1, "s": sym, "i": interval, "f": 100, "L": 200,
                      "o": "0.00100000", "c": str(base), "h": "61900.00000000", "l": "0.00100000",
                      "v": "1000.50000000", "n": 100 + n, "x": final, "q": "1.0000", "V": "500",
                      "Q": "0.500", "B": "123456"},
            }  # fmt: skip
        uid = self._next(stream + "#uid", 1027025)
        return {
            "lastUpdateId": uid,
            "bids": [[str(base - Decimal("0.01") * i), "1.50000000"] for i in range(10)],
            "asks": [[str(base + Decimal("0.01") * (i + 1)), "0.70000000"] for i in range(10)],
        }

    # -- REST -------------------------------------------------------------------------------------

    def _rest(self, request: web.Request, weight: int) -> web.Response | None:
        status = 200
        failure: web.Response | None = None
        if self.rest_down == "reset":
            self.rest_log.append((time.monotonic(), request.path, dict(request.query), 0))
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection drop, no HTTP answer
            return web.Response(status=500)
        if self.rest_down is not None:
            status = int(self.rest_down)
            failure = web.json_response(
                {"code": -1008, "msg": "Server is currently overloaded"}, status=status
            )
        elif self.rest_fail:
            status, retry = self.rest_fail.pop(0)
            failure = web.json_response(
                {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight "
                 "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."},
                status=status,
                headers={"Retry-After": f"{retry:g}"},
            )  # fmt: skip
        else:
            self.weight_used += weight
        self.rest_log.append((time.monotonic(), request.path, dict(request.query), status))
        return failure

    def _json(self, body: Any) -> web.Response:
        return web.json_response(body, headers={"X-MBX-USED-WEIGHT-1M": str(self.weight_used)})

    def _bad_symbol(self, request: web.Request) -> web.Response | None:
        if request.query.get("symbol") not in self.symbols:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return None

    async def _exchange_info(self, request: web.Request) -> web.Response:
        failed = self._rest(request, 20)
        if failed is not None:
            return failed
        symbols = [
            {"symbol": s, "status": status, "baseAsset": s[:3], "quoteAsset": s[3:]}
            for s, status in self.symbols.items()
        ]
        return self._json(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        failed = self._rest(request, 2) or self._bad_symbol(request)
        if failed is not None:
            return failed
        return self._json(self.rest_ticker(request.query["symbol"]))

    def rest_ticker(self, symbol: str) -> dict[str, Any]:
        return {
            "symbol": symbol, "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
            "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000", "lastPrice": "4.00000200",
            "lastQty": "200.00000000", "bidPrice": "4.00000000", "bidQty": "100.00000000",
            "askPrice": "4.00000200", "askQty": "100.00000000", "openPrice": "99.00000000",
            "highPrice": "100.00000000", "lowPrice": "0.10000000", "volume": "8913.30000000",
            "quoteVolume": "15.30000000", "openTime": 1499783499040, "closeTime": 1499869899040,
            "firstId": 28385, "lastId": 28460, "count": 76,
        }  # fmt: skip

    async def _klines(self, request: web.Request) -> web.Response:
        """``/api/v3/klines``: ``limit`` rows (default 500, at most 1000), oldest first, the newest
        opening at or before ``endTime`` (default now); the candle in progress is always the same
        row, and older ones differ by their close (:meth:`kline_row`)."""
        failed = self._rest(request, 2) or self._bad_symbol(request)
        if failed is not None:
            return failed
        interval = request.query.get("interval", "1m")
        step = _INTERVAL_MS.get(interval, 60_000)
        limit = min(int(request.query.get("limit", "500")), 1000)
        streamed = self.candles.get((request.query["symbol"], interval))
        if streamed is not None:  # the candles its stream sent, each as it stands now
            end = int(request.query.get("endTime", max(streamed)))
            return self._json([streamed[t] for t in sorted(streamed) if t <= end][-limit:])
        end = min(int(request.query.get("endTime", now_ms())), now_ms())
        last = end // step * step
        return self._json([self.kline_row(last - i * step, interval) for i in reversed(range(limit))])

    async def _trades(self, request: web.Request) -> web.Response:
        """``/api/v3/trades``: the most recent ``limit`` trades (default 500, at most 1000) of the
        trade stream, oldest first."""
        failed = self._rest(request, 25) or self._bad_symbol(request)
        if failed is not None:
            return failed
        limit = min(int(request.query.get("limit", "500")), 1000)
        await asyncio.sleep(self.trades_delay)
        rows = list(self.trades.get(request.query["symbol"], ()))
        return self._json(rows[-limit:])

    def kline_row(self, t: int, interval: str) -> list[Any]:
        """The REST row of the candle opening at ``t`` (ms)."""
        step = _INTERVAL_MS.get(interval, 60_000)
        close = "0.01577100"
        if t != now_ms() // step * step:  # a closed candle: its close tells it from the others
            close = str(Decimal(close) + Decimal(t // step % 97) * Decimal("0.00000001"))
        return [t, "0.01634790", "0.80000000", "0.01575800", close, "148976.11427815", t + step - 1,
                "2434.19055334", 308, "1756.87402397", "28.46694368", "0"]  # fmt: skip

    async def _depth(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        if limit > 10:
            return self._book_depth(request, limit)
        failed = self._rest(request, 5) or self._bad_symbol(request)
        if failed is not None:
            return failed
        return self._json(
            {
                "lastUpdateId": 1027024,
                "bids": [["4.00000000", "431.00000000"]],
                "asks": [["4.00000200", "12.00000000"]],
            }
        )

    def _book_depth(self, request: web.Request, limit: int) -> web.Response:
        """A snapshot of the symbol's evolving book, ``limit`` levels a side, weighed by ``limit``."""
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        if self.depth_fail:
            status, retry = self.depth_fail.pop(0)
            self.rest_log.append((time.monotonic(), request.path, dict(request.query), status))
            return web.json_response(
                {"code": -1003, "msg": "Too much request weight used"},
                status=status,
                headers={"Retry-After": f"{retry:g}", "X-MBX-USED-WEIGHT-1M": str(self.weight_used)},
            )
        failed = self._rest(request, weight) or self._bad_symbol(request)
        if failed is not None:
            return failed
        return self._json(self.book(request.query["symbol"]).snapshot(min(limit, 5000)))


FAST: dict[str, Any] = {
    "stall_ticker": 1.0,
    "stall_kline": 1.0,
    "stall_depth": 1.0,
    "stall_trades_min": 1.0,
    "stall_trades_factor": 10.0,  # the fake trades every 50 ms: the floor decides, like the others
    "silence_timeout": 3.0,
    "overlap": 0.2,
    "backoff_initial": 0.05,
    "backoff_max": 0.3,
    "policy_backoff": 0.2,
    "snapshot_wait": 3.0,
    "exchange_info_retry": 0.05,
    "exchange_info_retry_max": 0.3,
}
"""Timers of a BinanceSource shortened for tests (the venue's are minutes and hours).

``stall_<kind>`` go to its StallThresholds (``stall_trades_min`` to ``trades_min``,
``stall_trades_max`` to ``trades_max``), the ConnectionConfig fields to its
``connection``, the rest to the constructor."""


def fast_source(fake: FakeBinance, **changes: Any) -> BinanceSource:
    """A real BinanceSource pointed at ``fake``, with test timers."""
    options = {**FAST, **changes}
    stall = {k.removeprefix("stall_"): options.pop(k) for k in list(options) if k.startswith("stall_")}
    conn_fields = {f.name for f in dataclasses.fields(ConnectionConfig)}
    conn = {k: options.pop(k) for k in list(options) if k in conn_fields}
    return BinanceSource(
        rest_url=fake.rest_url,
        connection=ConnectionConfig(**{"ws_url": fake.ws_url, **conn}),
        stall=StallThresholds(**stall),
        **options,
    )


@contextlib.asynccontextmanager
async def binance_gateway(
    fake: FakeBinance | None = None, **changes: Any
) -> AsyncIterator[tuple[Running, FakeBinance]]:
    """A gateway whose source is a real BinanceSource talking to a fake Binance."""
    async with contextlib.AsyncExitStack() as own:
        if fake is None:
            fake = await own.enter_async_context(FakeBinance())
        async with running_gateway(
            source=fast_source(fake, **changes), linger=0.2, resume_window=0.2
        ) as gateway:
            yield gateway, fake


class Recorder:
    """Reads every message of a test client in the background."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.messages: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            msg = await self.client.ws.receive()
            if msg.type.name != "TEXT":
                return
            self.raw.append(msg.data)
            self.messages.append(json.loads(msg.data))

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def of(self, channel: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.messages if m.get("channel") == channel and (kind is None or m["type"] == kind)
        ]

    def data(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.of(channel) if "seq" in m and not m.get("snapshot")]

    def statuses(self, channel: str) -> list[str]:
        return [m["status"] for m in self.of(channel, "status")]
