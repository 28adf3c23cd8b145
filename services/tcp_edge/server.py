"""The edge: accepts client sockets, forwards requests to services, delivers events.

It holds no business rules and no SQL. Its state is which sessions are on which of its
sockets, and the bus subscriptions those sessions need.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
import zmq.asyncio
from loguru import logger

from chatroom import buskeys, metrics
from chatroom.bus_client import BusClient
from chatroom.bus_contract import EVENT_HWM, InternalOp
from chatroom.config import ConfigError, Settings
from chatroom.errors import ServiceError, rate_limited
from chatroom.logs import request_context
from chatroom.protocol import OPS, ErrorCode, reply_error, reply_ok
from chatroom.ratelimit import Buckets
from services.tcp_edge.account import OwnAccount
from services.tcp_edge.admission import PreloginBudget
from services.tcp_edge.connection import Connection
from services.tcp_edge.core import Limits, Request
from services.tcp_edge.dedupe import FirstCopies
from services.tcp_edge.delivery import EventDelivery
from services.tcp_edge.login import Logins, bus_context
from services.tcp_edge.read_marks import MarkBatches
from services.tcp_edge.session_use import SessionUse
from services.tcp_edge.typing_hints import TypingCoalescer

# A request the edge answers itself: the reply, then any pushes that go after it.
LocalHandler = Callable[[Connection, Request], Awaitable[list[dict[str, Any]]]]

RATE_LIMIT_MESSAGES = {
    "message": "you are sending messages too fast",
    "friend_request": "you are sending friend requests too fast",
    "avatar": "you are changing your avatar too often",
    "room_create": "you are creating rooms too often",
    "presence": "you are changing your status too often",
    "typing": "typing indicators are being sent too often",
    "membership": "you are joining, leaving or answering too often",
    "read": "you are marking conversations read too often",
    "notify": "you are changing notification settings too often",
    "edit": "you are editing or deleting messages too fast",
    "block": "you are blocking or unblocking too often",
    "moderation": "you are moderating rooms too fast",
    "account": "you are changing your account or sessions too often",
    "export": "you are exporting too often",
    "login_ip": "too many login attempts from your address",
}
EDGE_RATED_ACTIONS = tuple(RATE_LIMIT_MESSAGES)
# Re-registering every session of an edge social had presumed dead is a transaction per
# session: it may take longer than an ordinary request.
RESYNC_TIMEOUT_MS = 120_000


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Server side TLS 1.2+ with the configured certificate chain and key (PEM)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use CHAT_TLS_CERT_FILE={settings.tls_cert_file} with "
            f"CHAT_TLS_KEY_FILE={settings.tls_key_file}: {exc}"
        ) from None
    return context


class Edge:
    """One edge process: its listeners, its connections (who may hold one, who is
    logged in on which), the local ops it answers itself and its part of the bus."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.edge_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.limits = Limits.from_settings(settings)
        self.connections: set[Connection] = set()
        self.conns_per_ip: Counter[str] = Counter()  # by Connection.ip_key
        self.prelogin: PreloginBudget[Connection] = PreloginBudget(
            settings.max_prelogin_conns, settings.max_prelogin_bytes, busy=lambda c: c.busy
        )
        self.buckets = {action: Buckets(settings.rate(action)) for action in EDGE_RATED_ACTIONS}
        self._conn_ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self.zctx = zmq.asyncio.Context()
        self.bus = BusClient(settings, self.edge_id, self.zctx)
        sub: zmq.Socket[bytes] = zmq.Socket(self.zctx, zmq.SUB)  # delivery's LoopSocket drives it
        buskeys.secure_client(sub, buskeys.client_keys(settings, buskeys.EDGE_ROLE))
        sub.setsockopt(zmq.LINGER, 0)
        # Subscriptions travel as messages towards the bus: a burst of logins or logouts
        # beyond the default 1,000-message limit would silently drop some, and the edge
        # would stop hearing a room. They must never be dropped (see EVENT_HWM).
        sub.setsockopt(zmq.SNDHWM, 0)
        sub.setsockopt(zmq.RCVHWM, EVENT_HWM)
        self.bus.links.attach(sub, "events.out")
        self.sub_socket = sub
        self.own_account = OwnAccount(
            self.bus,
            self.edge_id,
            on_logout=lambda conn: self._drop_prelogin(self.prelogin.admit(conn)),
        )
        # Through several buses every event comes once per bus, and a service sends
        # presence again through a bus link that came back: keep the first copy.
        first_copies = FirstCopies()
        self.delivery = EventDelivery(
            sub,
            self.bus,
            lambda conn: bus_context(self.edge_id, conn, conn.session),
            first_copies,
            settings.typing_merge_ms / 1000,
            settings.event_linger_ms / 1000,
        )
        self.logins = Logins(
            self.bus,
            self.edge_id,
            # What every login reply announces (settings do not change while running).
            settings.limits(),
            on_login=self.prelogin.release,
            on_logout=lambda conn: self._drop_prelogin(self.prelogin.admit(conn)),
            delivery=self.delivery,
        )
        # The ops the edge runs itself; every other op goes to its service as it came.
        self.marks = MarkBatches(self.bus, self.edge_id, settings.read_mark_linger_ms / 1000)
        self.local_ops: dict[str, LocalHandler] = {
            "login": self.logins.login,
            "logout": self.logins.logout,
            "typing": self._typing,
            "read.mark": self.marks.mark,  # batched with the others' (read_marks.py)
            "account.export": self.own_account.export,
            "account.delete": self.own_account.delete,
        }
        self.typing = TypingCoalescer()
        self.session_use = SessionUse(
            self.bus,
            self.edge_id,
            lambda: (c.session.session_id for c in self.sessions() if c.session is not None),
            settings.session_in_use_s,
        )
        self.servers: list[asyncio.Server] = []
        # Metrics (chatroom.metrics), their children bound here once.
        m = metrics.get()
        self.meter = metrics.RequestMeter("edge", OPS)
        self.open_connections = m.connections
        self.outbound_queued = m.outbound_queued_bytes
        self.slow_reader_cuts = m.slow_reader_cuts
        self.logins_by_outcome = {
            outcome: m.logins.labels(outcome) for outcome in ("ok", "failed", "throttled")
        }

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        self.bus.start()
        s = self.settings
        self.servers = [await self._listen(s.edge_port, None)]
        if s.tls_port:
            self.servers.append(await self._listen(s.tls_port, tls_context(s)))
        background = [
            asyncio.create_task(self.delivery.run()),
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self.session_use.run()),
        ]
        logger.info(
            "edge {} listening on {}:{}{}",
            self.edge_id,
            s.edge_host,
            s.edge_port,
            f" and TLS on {s.tls_port}" if s.tls_port else "",
        )
        await self._stopping.wait()
        await self._drain()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self.bus.close()
        self.sub_socket.close()
        self.zctx.term()
        logger.info("edge stopped")

    async def _listen(self, port: int, tls: ssl.SSLContext | None) -> asyncio.Server:
        s = self.settings
        return await asyncio.get_running_loop().create_server(
            lambda: Connection(self, f"{self.edge_id}/{next(self._conn_ids)}"),
            host=s.edge_host,
            port=port,
            reuse_port=s.edge_workers > 1,
            backlog=4096,
            ssl=tls,
            # A client that opens the socket but never finishes the handshake is
            # dropped as one that never logs in would be.
            ssl_handshake_timeout=s.login_timeout_s if tls else None,
        )

    async def _drain(self) -> None:
        """SIGTERM: stop accepting, let in-flight requests finish, then say goodbye."""
        logger.info("draining {} connections", len(self.connections))
        for server in self.servers:
            server.close()
        for conn in self.connections:
            conn.stop_reading()
        self.marks.flush()  # no linger now: the marks read go to social at once
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.say_goodbye(
                ErrorCode.SHUTTING_DOWN, "the server is restarting; reconnect in a few seconds"
            )
        # One call takes all of this edge's users offline, instead of one per connection.
        try:
            await self.bus.call(
                "social", InternalOp.EDGE_GONE, ctx={"edge": self.edge_id}, retry=True
            )
        except ServiceError as exc:
            logger.warning("could not report shutdown to social ({}); the reaper will", exc.code)
        await self.session_use.flush()  # the sessions closed by the goodbyes: used until now

    # ------------------------------------------------------------------ connections

    def connection_opened(self, conn: Connection) -> None:
        if self.conns_per_ip[conn.ip_key] >= self.settings.max_conns_per_ip:
            logger.warning("refusing a connection from {}: too many open", conn.ip)
            conn.say_goodbye(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"your address already has {self.settings.max_conns_per_ip} connections open; "
                "close some and try again",
            )
            return
        self.conns_per_ip[conn.ip_key] += 1
        self.connections.add(conn)
        self.open_connections.inc()
        self._drop_prelogin(self.prelogin.admit(conn))

    def prelogin_activity(self, conn: Connection, held_bytes: int, completed: bool) -> None:
        """A connection not logged in was read from: it may have pushed the budget over."""
        if completed:
            self.prelogin.active(conn)
        self._drop_prelogin(self.prelogin.holding(conn, held_bytes))

    def _drop_prelogin(self, conns: list[Connection]) -> None:
        for conn in conns:
            logger.info(
                "dropping {} from {}: over the pre-login budget ({} connections, {} bytes)",
                conn.conn_id,
                conn.ip,
                len(self.prelogin),
                self.prelogin.buffered_bytes,
            )
            conn.say_goodbye(
                ErrorCode.SERVER_BUSY,
                "too many connections are waiting to log in here; try again in a few seconds",
            )

    def connection_closed(self, conn: Connection) -> None:
        if conn not in self.connections:
            return  # refused at the per-IP cap
        self.connections.remove(conn)
        self.open_connections.dec()
        self.prelogin.release(conn)
        self.typing.forget(conn)
        self.delivery.blocks.forget(conn)
        self.conns_per_ip[conn.ip_key] -= 1
        if not self.conns_per_ip[conn.ip_key]:
            del self.conns_per_ip[conn.ip_key]
        if conn.session is not None:
            self.session_use.ended(conn.session.session_id)
        if conn.session is not None and not self._stopping.is_set():
            asyncio.get_running_loop().create_task(self.logins.close_session(conn))

    def subscribe(self, topic: bytes, conn: Connection) -> None:
        self.delivery.subs.add(topic, conn)

    def unsubscribe(self, topic: bytes, conn: Connection) -> None:
        self.delivery.subs.remove(topic, conn)

    async def _sweep(self) -> None:
        """Close connections that never logged in, or went quiet, in time."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            queued = 0
            for conn in list(self.connections):
                conn.check_timeouts(now)
                queued += conn.queued_bytes
            self.outbound_queued.set(queued)

    # ------------------------------------------------------------------ sessions at social

    def sessions(self) -> list[Connection]:
        return [c for c in self.connections if c.session is not None]

    async def _heartbeat(self) -> None:
        """Tell social this edge is alive. If social holds fewer of our sessions than we
        have, or more, twice in a row (we were presumed dead while paused, or a close got
        lost), send it the full list again."""
        mismatches = 0
        while True:
            await asyncio.sleep(self.settings.edge_heartbeat_s)
            local = self.sessions()
            try:
                reply = await self.bus.call(
                    "social", InternalOp.EDGE_HEARTBEAT, ctx={"edge": self.edge_id}, retry=True
                )
            except ServiceError as exc:
                logger.warning("heartbeat to social failed: {}", exc.code)
                continue
            mismatches = mismatches + 1 if reply.get("sessions", 0) != len(local) else 0
            if mismatches >= 2:
                await self._resync(local)
                mismatches = 0

    async def _resync(self, conns: list[Connection]) -> None:
        # The whole list in one request: social drops the sessions it holds that are not
        # in it, so a partial list would log the rest out.
        sessions = [
            [c.conn_id, session.user_id, session.username]
            for c in conns
            if (session := c.session) is not None
        ]
        logger.warning(
            "social's count of this edge's sessions is off; sending all {}", len(sessions)
        )
        try:
            await self.bus.call(
                "social",
                InternalOp.EDGE_RESYNC,
                {"sessions": sessions},
                ctx={"edge": self.edge_id},
                retry=True,
                timeout_ms=max(self.settings.request_timeout_ms, RESYNC_TIMEOUT_MS),
            )
        except ServiceError as exc:
            logger.warning("resync failed: {}", exc.code)

    # ------------------------------------------------------------------ requests

    async def dispatch(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        """Run one request; return the reply followed by any pushes that go after it."""
        op = request.op_name
        started = time.perf_counter()
        try:
            with request_context(op=op, conn=conn.conn_id):
                if request.op.rate is not None:
                    self._spend(conn, request.op.rate)
                handler = self.local_ops.get(op, self._forward)
                replies = await handler(conn, request)
        except ServiceError as exc:
            self.meter.failed(op, exc.code, time.perf_counter() - started)
            if op == "login":
                throttled = exc.code == ErrorCode.RATE_LIMITED
                self.logins_by_outcome["throttled" if throttled else "failed"].inc()
            return [reply_error(request.request_id, exc.code, exc.message, **exc.extra)]
        self.meter.ok(op, time.perf_counter() - started)
        if op == "login":
            self.logins_by_outcome["ok"].inc()
        return replies

    async def _forward(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        """An op a service answers: sent as it came, with who asks."""
        op, args = request.op, request.args
        retry = op.idempotent or bool(args.get("client_id"))
        ctx = bus_context(self.edge_id, conn, conn.session)
        result = await self.bus.call(op.service, request.op_name, args, ctx, retry=retry)
        return [reply_ok(request.request_id, **result)]

    async def _typing(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        """Forward a typing hint only when it changes what the others see
        (typing_hints.py); the rest are answered here, forwarded: false."""
        session = conn.session
        if session is None or not self.typing.should_forward(conn, session.user_id, request.args):
            return [reply_ok(request.request_id, forwarded=False)]
        self._spend(conn, "typing")
        # Noted before the round trip, so what the client sends next is weighed against
        # it (an "off" right after an "on" must go too); undone if it did not get there.
        self.typing.forwarded(conn, session.user_id, request.args)
        try:
            return await self._forward(conn, request)
        except BaseException:
            self.typing.unforwarded(conn, session.user_id, request.args)
            raise

    def _spend(self, conn: Connection, action: str) -> None:
        """Take a token from the action's bucket (per IP before login, else per user);
        raise rate_limited with the wait when there is none."""
        session = conn.session
        key: object = conn.ip_key if action == "login_ip" or session is None else session.user_id
        wait, first = self.buckets[action].take(key)
        if not wait:
            return
        (logger.info if first else logger.debug)("rate limited {} for {}", action, key)
        raise rate_limited(RATE_LIMIT_MESSAGES[action], wait)
