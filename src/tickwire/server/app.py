"""HTTP and WebSocket endpoints on one aiohttp application, serving one
:class:`~tickwire.node.Node`, and the start-up and shutdown order.

Start: the node (bus, then source task), then the listening socket.
Stop (SIGINT/SIGTERM): stop accepting, close every client with 1001 and a
reason, wait up to ``shutdown_timeout``, cancel what is left, then stop the
node (source, bus). A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.resources
import ipaddress
import logging
import os
import secrets
import signal
import socket
import string
import time
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from .. import __version__
from ..bus import Bus
from ..channels import Channel, is_private_name
from ..clock import wall_ms
from ..config import Settings
from ..errors import CloseCode, ConfigError, ErrorCode, ProtocolError
from ..flusher import Flusher
from ..node import Node
from ..protocol import encode_connected, encode_error
from ..session import Limits, Session
from ..sources import Source, SourceKind
from .accesslog import AccessLogger
from .admission import ConnectionGuard, Rejection, client_address
from .auth import Identity, Verifier
from .heartbeat import Heartbeat
from .market import add_market_routes
from .metrics import CONTENT_TYPE, Metrics
from .publish import ApiKeys, PublishApi
from .workers import run_workers
from .ws import SWEEP, WebSocket, WsTransport, release_http_state


__all__ = ["CannotListen", "Gateway", "run", "serve"]

logger = logging.getLogger("tickwire.server")

_ALPHABET = string.ascii_lowercase + string.digits
_ENDS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)  # where ``async for`` over a WebSocket stops


class Gateway:
    """The HTTP and WebSocket face of one :class:`Node`: admission, sessions, endpoints.

    Args:
        settings: the node's settings.
        source, bus: passed to the node (tests and embedding); by default the
            ones the settings name.
    """

    def __init__(self, settings: Settings, *, source: Source | None = None, bus: Bus | None = None) -> None:
        self.settings = settings
        self.started = time.monotonic()
        self.node = Node(settings, source=source, bus=bus)
        self.stats = self.node.stats
        self.bus, self.hub, self.source, self.ingest = (
            self.node.bus,
            self.node.hub,
            self.node.source,
            self.node.ingest,
        )
        self.verifier = Verifier.from_settings(settings)  # None: no JWT key, private channels closed
        self.api_keys = ApiKeys.from_settings(settings)
        self.guard = ConnectionGuard(
            max_connections=settings.max_connections,
            max_per_ip=settings.max_connections_per_ip,
            allowed_origins=settings.allowed_origins,
            stats=self.stats,
        )
        self.trusted_proxies = tuple(ipaddress.ip_network(n) for n in settings.trusted_proxies)
        self.metrics = Metrics(
            self.stats,
            self.hub,
            self.source.health,
            bus=self.bus,
            sessions=lambda: self.sessions,
            connection_limit=settings.max_connections,
            books=self.ingest.book_levels,
            info={
                "version": __version__,
                "source": self.source.name,
                "bus": self.bus.name,
                "role": settings.role,
            },
        )
        self.publish_api = PublishApi(
            self.ingest, self.api_keys, max_size=settings.max_publish_size, stats=self.stats
        )
        self.limits = Limits(
            max_subscriptions=settings.max_subscriptions,
            rate=settings.rate,
            burst=settings.burst,
            max_queue=settings.max_queue,
        )
        self.sessions: dict[Session, None] = {}
        self.flusher = Flusher(write_delay=settings.write_delay_ms / 1000, on_flush=self.stats.count_flush)
        self.hub.hold = self.flusher.hold  # bursts of latest values conflate while writes are slow
        self.hub.on_burst = self.flusher.brace  # and from their start, to a big audience
        self.heartbeat = Heartbeat(settings.ping_interval)  # one ping sweep, no timer per connection
        self._tasks: set[asyncio.Task[Any]] = set()
        self._all_closed = asyncio.Event()
        self.shutting_down = False
        self.app = self._make_app()

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/health", self.handle_health)
        if self.settings.role == "ingest":  # the upstream only: /health and /metrics
            app.router.add_get("/metrics", self.handle_metrics)
            app.on_startup.append(self._on_startup)
            app.on_cleanup.append(self._on_cleanup)
            return app
        app.router.add_get("/ws", self.handle_ws)
        app.router.add_get("/api/v1/ws/stats", self.handle_stats)
        app.router.add_get("/metrics", self.handle_metrics)
        self.publish_api.add_routes(app)
        add_market_routes(app, self.source)
        app.router.add_get("/", self.handle_index)
        app.router.add_static("/static", str(importlib.resources.files("tickwire") / "web"))
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    # -- lifecycle -----------------------------------------------------------

    async def _on_startup(self, app: web.Application) -> None:
        await self.node.start()

    async def _on_shutdown(self, app: web.Application) -> None:
        """Close every client with 1001, then wait for them (bounded)."""
        self.shutting_down = True
        for session in list(self.sessions):
            session.flush_now()
            session.close(CloseCode.GOING_AWAY, "server shutting down")
        if self.sessions:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), self.settings.shutdown_timeout)

    async def _on_cleanup(self, app: web.Application) -> None:
        self.flusher.cancel()
        self.heartbeat.close()
        for task in list(self._tasks):
            task.cancel()
        await self.node.stop()

    # -- WebSocket -----------------------------------------------------------

    def _client_id(self) -> str:
        return f"ws_{wall_ms()}_{''.join(secrets.choice(_ALPHABET) for _ in range(9))}"

    async def validate(self, channel: Channel) -> None:
        await self.source.validate(channel)

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        """Admission (admission.py: Origin, total cap, per-address cap), the upgrade, then reading.

        One coroutine for the whole connection: while a client is idle this frame,
        aiohttp's ``receive`` and its queue's ``read`` are all that wait, not a chain of
        ours (each coroutine frame is 0.25-0.45 KB per connection; docs/fanout.md,
        "Memory per connection"). The work before and after is in plain methods.
        """
        address = client_address(
            request.remote or "", request.headers.get("X-Forwarded-For"), self.trusted_proxies
        )
        rejection = self.guard.admit(address, request.headers.get("Origin"))
        if rejection is not None:
            return await self._refuse(request, rejection)
        try:
            ws = self._websocket()
            try:
                await ws.prepare(request)
            except ConnectionResetError:  # the client gave up mid-handshake (a reconnect storm's retries)
                logger.debug("handshake abandoned by %s", address)
                return web.Response(status=400)  # aiohttp's write of it meets the reset quietly
            session, transport = self._open(request, ws, address)
            try:
                while not session.closed:  # not ``async for``: one coroutine frame less per connection
                    msg = await ws.receive()
                    if msg.type in _ENDS:
                        break
                    if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                        await session.receive(msg.data)
                    elif msg.type is WSMsgType.ERROR:
                        logger.info("client %s: read error %s", session.client_id, msg.data)
                        break
                if transport.closing_task is not None:  # our close code goes out, not the handler's 1000
                    with contextlib.suppress(Exception):
                        await asyncio.shield(transport.closing_task)
            finally:
                self.heartbeat.discard(transport)
                await session.cleanup()
                self._closed(session, ws)
            return ws
        finally:
            self.guard.release(address)

    async def _refuse(self, request: web.Request, rejection: Rejection) -> web.StreamResponse:
        logger.debug("refused %s: %s", request.remote, rejection.reason)  # the socket's peer
        if rejection.close_code is None:
            raise web.HTTPServiceUnavailable(text=rejection.message, headers={"Retry-After": "5"})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=rejection.close_code, message=rejection.message.encode()[:120])
        return ws

    def _token_identity(self, request: web.Request) -> tuple[Identity | None, ProtocolError | None]:
        """The identity of ``?token=``, or the error to send after ``connected``."""
        token = request.rel_url.query.get("token")  # not request.query: it caches a copy per request
        if token is None:
            return None, None
        if self.verifier is None:
            error = ProtocolError(ErrorCode.UNAUTHORIZED, "authentication is not configured on this gateway")
            return None, error
        try:
            return self.verifier.verify(token), None
        except ProtocolError as exc:
            return None, exc

    def _websocket(self) -> WebSocket:
        if self.shutting_down:
            raise web.HTTPServiceUnavailable(text="shutting down")
        s = self.settings
        return WebSocket(
            heartbeat=None if SWEEP else s.ping_interval, max_msg_size=s.max_message_size, compress=False
        )

    def _open(self, request: web.Request, ws: WebSocket, address: str) -> tuple[Session, WsTransport]:
        """After the upgrade: the session, its greeting, and its place in the ping sweep."""
        release_http_state(request, ws)
        transport = WsTransport(ws, request, self._tasks)
        session = Session(
            self._client_id(),
            transport,
            self.hub,
            limits=self.limits,
            stats=self.stats,
            clock=time.monotonic,
            clock_ms=wall_ms,
            validate=self.validate,
            authenticate=self.verifier.authenticate if self.verifier is not None else None,
            flusher=self.flusher,
        )
        identity, token_error = self._token_identity(request)
        if identity is not None:
            session.set_identity(identity)
        self.sessions[session] = None
        self.stats.connections_current += 1
        self.stats.connections_opened += 1
        user = identity.user if identity is not None else None
        logger.info("connect %s from %s user=%s", session.client_id, address, user)
        ws.on_too_big = session.too_big  # a bound method: 64 bytes a connection, a closure 200
        session.send(encode_connected(session.client_id, wall_ms(), user=user))
        if token_error is not None:
            self.stats.count_error(token_error.code)
            session.send(encode_error(token_error, wall_ms()))
        session.start()
        if SWEEP:
            transport.listen()
            self.heartbeat.add(transport)
        return session, transport

    def _closed(self, session: Session, ws: WebSocket) -> None:
        del self.sessions[session]
        if not self.sessions:
            self._all_closed.set()
        self.stats.connections_current -= 1
        # the code we sent when we closed (the peer's echo may differ), else the peer's
        code = session.close_code or ws.close_code or 1006
        self.stats.connections_closed[code] += 1
        reason = session.close_reason or ("connection lost" if code == 1006 else "closed by client")
        logger.info("disconnect %s code=%s reason=%s", session.client_id, code, reason)

    # -- HTTP ----------------------------------------------------------------

    async def handle_health(self, request: web.Request) -> web.Response:
        upstream = self.node.upstream_health()
        bus = self.bus.health()
        ok = upstream.live and bus.connected and not self.shutting_down
        body = {
            "status": "ok" if ok else "degraded",
            "upstream": upstream,
            "bus": bus,
            "uptimeSeconds": round(time.monotonic() - self.started, 1),
        }
        return _json(body, status=200 if ok else 503)

    def stats_body(self, *, private: bool = False) -> dict[str, object]:
        """The stats; private channel names (``orders:<user>``...) only when ``private``.

        A public list of them would tell anyone which users are online, so
        unprotected stats count them and name none (docs/security.md).
        """
        channels = self.hub.channels()
        public = [c for c in channels if not is_private_name(c)]
        upstream = self.source.streams()
        binance = upstream if self.source.kind is SourceKind.LIVE else []  # Binance is the live venue
        return {
            "connectedClients": len(self.sessions),
            "activeChannels": channels if private else public,
            "privateChannels": len(channels) - len(public),
            "quoteStreams": sum(1 for c in channels if c.startswith(("price:", "ticker:"))),
            "signalStreams": sum(1 for c in channels if c.startswith("signals:")),
            "binanceStreams": len(binance),
            "binanceActiveStreams": binance,
            "priceCache": self.hub.cached_count,
            "bus": self.bus.health(),  # demand on this node and cluster-wide (Redis)
            "source": self.source.name,
            "upstreamStreams": len(upstream),
            "upstreamActiveStreams": upstream,
            "subscriptions": self.hub.subscription_count,
            "messagesIn": self.stats.messages_in,
            "messagesOut": self.stats.messages_out,
            "conflatedMessages": self.stats.conflated,
            "slowConsumerDisconnects": self.stats.slow_disconnects,
            "staleChannels": self.hub.stale_channels(),
            "uptimeSeconds": round(time.monotonic() - self.started, 1),
        }

    def _protected(self, request: web.Request) -> web.Response | None:
        """The 401 answer when stats and metrics need the API key and it is missing."""
        return self.api_keys.require(request) if self.settings.protect_stats else None

    async def handle_stats(self, request: web.Request) -> web.Response:
        denied = self._protected(request)
        if denied is not None:
            return denied
        # names of private channels only behind --protect-stats, whose key this request had
        return _json({"success": True, "data": self.stats_body(private=self.settings.protect_stats)})

    async def handle_metrics(self, request: web.Request) -> web.Response:
        denied = self._protected(request)
        if denied is not None:
            return denied
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def handle_index(self, request: web.Request) -> web.Response:
        page = (importlib.resources.files("tickwire") / "web" / "index.html").read_bytes()
        return web.Response(body=page, content_type="text/html")


def _json(body: object, *, status: int = 200) -> web.Response:
    """A JSON response; msgspec encodes the typed health structs in it."""
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


class CannotListen(ConfigError):
    """The listening socket cannot be opened (port taken, address not on this machine).

    Not a malformed setting, but one to change: the CLI prints it on one line and exits 2.
    """


def _cannot_listen(settings: Settings, exc: OSError) -> str:
    """``cannot listen on HOST:PORT: why (the flag / variable to change)``."""
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        setting = "--host / TICKWIRE_HOST"
    else:
        setting = "--port / TICKWIRE_PORT"
    # uvloop's strerror is a sentence around the address; the errno's own text is the reason
    known = exc.errno is not None and exc.errno > 0 and not isinstance(exc, socket.gaierror)
    why = os.strerror(exc.errno) if known and exc.errno is not None else exc.strerror or str(exc)
    return f"cannot listen on {settings.host}:{settings.port}: {why.lower()} ({setting})"


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    """The port actually bound: ``--port 0`` asks the OS for a free one."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Run a gateway until SIGINT/SIGTERM (a second one exits at once)."""
    gateway = Gateway(settings)
    runner = web.AppRunner(
        gateway.app,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        access_log_class=AccessLogger,  # redacts ?token=
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        backlog=settings.backlog,
        reuse_address=True,
        reuse_port=settings.reuse_port or None,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # the node started with the app: stop its bus and source
        raise CannotListen(_cannot_listen(settings, exc)) from None
    logger.info(
        "tickwire listening on http://%s:%s/ (source %s, bus %s)",
        settings.host, _bound_port(runner, settings.port), gateway.source.name, gateway.bus.name,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logger.warning("second signal: exiting now")
            raise SystemExit(1)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        logger.info("shutting down")
    finally:
        await runner.cleanup()


def run(settings: Settings) -> None:
    if settings.workers > 1:
        run_workers(settings)
        return
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional in spirit
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
