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
from typing import Any

import zmq
import zmq.asyncio
from loguru import logger

from chatroom import buskeys
from chatroom.bus_client import BusClient
from chatroom.config import ConfigError, Settings
from chatroom.errors import ServiceError, rate_limited
from chatroom.logs import request_context
from chatroom.protocol import (
    ErrorCode,
    Op,
    dumps,
    frame_payload,
    loads,
    reply_error,
    reply_ok,
)
from chatroom.ratelimit import Buckets
from chatroom.runtime import EVENT_HWM, room_topic, user_topic
from chatroom.zmq_io import BurstReceiver
from services.tcp_edge.admission import PreloginBudget
from services.tcp_edge.connection import Connection, Session

SERVER_NAME = "chatroom"
RATE_LIMIT_MESSAGES = {
    "message": "you are sending messages too fast",
    "friend_request": "you are sending friend requests too fast",
    "avatar": "you are changing your avatar too often",
    "room_create": "you are creating rooms too often",
    "presence": "you are changing your status too often",
    "membership": "you are joining, leaving or answering too often",
    "login_ip": "too many login attempts from your address",
}
EDGE_RATED_ACTIONS = tuple(RATE_LIMIT_MESSAGES)
PROTOCOL_VERSION = 1
# Events taken from the bus before the connections' writes go out: bounds the delay the
# first event of a burst can get (about a millisecond of work per 100 events).
EVENT_BURST = 256
# Re-registering every session of an edge social had presumed dead is a transaction per
# session: it may take longer than an ordinary request.
RESYNC_TIMEOUT_MS = 120_000


class Subscriptions:
    """Which local connections hear which topic; subscribes on the bus on first use."""

    def __init__(self, sub: zmq.asyncio.Socket) -> None:
        self.sub = sub
        self.by_topic: dict[bytes, set[Connection]] = {}

    def add(self, topic: bytes, conn: Connection) -> None:
        members = self.by_topic.get(topic)
        if members is None:
            members = self.by_topic[topic] = set()
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        members.add(conn)

    def remove(self, topic: bytes, conn: Connection) -> None:
        members = self.by_topic.get(topic)
        if members is None:
            return
        members.discard(conn)
        if not members:
            del self.by_topic[topic]
            self.sub.setsockopt(zmq.UNSUBSCRIBE, topic)

    def targets(self, topic: bytes) -> set[Connection]:
        return self.by_topic.get(topic, set())


def session_topics(session: Session) -> list[bytes]:
    return [user_topic(session.user_id), *(room_topic(r) for r in session.room_ids)]


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
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.edge_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.connections: set[Connection] = set()
        self.conns_per_ip: Counter[str] = Counter()  # by Connection.ip_key
        self.prelogin = PreloginBudget(
            settings.max_prelogin_conns, settings.max_prelogin_bytes, busy=lambda c: c.inflight > 0
        )
        self.buckets = {action: Buckets(settings.rate(action)) for action in EDGE_RATED_ACTIONS}
        # What every login reply announces (settings do not change while running).
        self.limits = settings.limits()
        self._conn_ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self.zctx = zmq.asyncio.Context()
        self.bus = BusClient(settings, self.edge_id, self.zctx)
        sub = self.zctx.socket(zmq.SUB)
        buskeys.secure_client(sub, buskeys.client_keys(settings, buskeys.EDGE_ROLE))
        sub.setsockopt(zmq.LINGER, 0)
        # Subscriptions travel as messages towards the bus: a burst of logins or logouts
        # beyond the default 1,000-message limit would silently drop some, and the edge
        # would stop hearing a room. They must never be dropped (see EVENT_HWM).
        sub.setsockopt(zmq.SNDHWM, 0)
        sub.setsockopt(zmq.RCVHWM, EVENT_HWM)
        sub.connect(settings.bus_connect("events.out"))
        self.sub_socket = sub
        self.subs = Subscriptions(sub)
        self.servers: list[asyncio.Server] = []

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
            asyncio.create_task(self._deliver_events()),
            asyncio.create_task(self._sweep()),
            asyncio.create_task(self._heartbeat()),
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
            conn.backlog.clear()
            if conn.transport and not conn.closing:
                conn.transport.pause_reading()
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while any(c.inflight for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.say_goodbye(
                ErrorCode.SHUTTING_DOWN, "the server is restarting; reconnect in a few seconds"
            )
        # One call takes all of this edge's users offline, instead of one per connection.
        try:
            await self.bus.call("social", "edge.gone", ctx={"edge": self.edge_id}, retry=True)
        except ServiceError as exc:
            logger.warning("could not report shutdown to social ({}); the reaper will", exc.code)

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
        self._drop_prelogin(self.prelogin.admit(conn))

    def prelogin_activity(self, conn: Connection, completed_requests: bool) -> None:
        """A connection not logged in was read from: it may have pushed the budget over."""
        if completed_requests:
            self.prelogin.active(conn)
        self._drop_prelogin(self.prelogin.holding(conn, conn.decoder.buffered))

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
                    "social", "edge.heartbeat", ctx={"edge": self.edge_id}, retry=True
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
            [c.conn_id, c.session.user_id, c.session.username]
            for c in conns
            if c.session is not None
        ]
        logger.warning(
            "social's count of this edge's sessions is off; sending all {}", len(sessions)
        )
        try:
            await self.bus.call(
                "social",
                "edge.resync",
                {"sessions": sessions},
                ctx={"edge": self.edge_id},
                retry=True,
                timeout_ms=max(self.settings.request_timeout_ms, RESYNC_TIMEOUT_MS),
            )
        except ServiceError as exc:
            logger.warning("resync failed: {}", exc.code)

    def connection_closed(self, conn: Connection) -> None:
        if conn not in self.connections:
            return  # refused at the per-IP cap
        self.connections.remove(conn)
        self.prelogin.release(conn)
        self.conns_per_ip[conn.ip_key] -= 1
        if not self.conns_per_ip[conn.ip_key]:
            del self.conns_per_ip[conn.ip_key]
        if conn.session is not None and not self._stopping.is_set():
            asyncio.get_running_loop().create_task(self._close_session(conn))

    async def _close_session(self, conn: Connection) -> None:
        session = conn.session
        if session is None:
            return
        conn.session = None
        for topic in session_topics(session):
            self.subs.remove(topic, conn)
        try:
            await self.bus.call(
                "social", "session.close", ctx=self._context(conn, session), retry=True
            )
        except ServiceError as exc:
            logger.warning("could not close session {}: {}", session.session_id, exc.code)

    def _context(self, conn: Connection, session: Session | None) -> dict[str, Any]:
        ctx: dict[str, Any] = {"ip": conn.ip, "edge": self.edge_id, "conn": conn.conn_id}
        if session is not None:
            ctx.update(
                user_id=session.user_id,
                username=session.username,
                session_id=session.session_id,
            )
        return ctx

    async def _sweep(self) -> None:
        """Close connections that never logged in, or went quiet, in time."""
        s = self.settings
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.session is None and now - conn.opened_at > s.login_timeout_s:
                    conn.say_goodbye("login_timeout", f"log in within {s.login_timeout_s:g} s")
                elif now - conn.last_seen > s.idle_timeout_s:
                    conn.say_goodbye(
                        "idle_timeout",
                        f"nothing received for {s.idle_timeout_s:g} s; send ping to stay connected",
                    )

    # ------------------------------------------------------------------ events

    async def _deliver_events(self) -> None:
        """Deliver pushed events to local sockets, in bursts: after each event, every
        event already waiting is taken too, and each connection then gets all of its
        frames in one write. A burst of 30 messages to a 100-member room costs 100
        writes instead of 3,000 (and the clients fewer reads)."""
        events = BurstReceiver(self.sub_socket)
        while True:
            outbox: dict[Connection, list[bytes]] = {}
            for parts in await events.receive(EVENT_BURST):
                self._handle_event(parts, outbox)
            for conn, frames in outbox.items():
                conn.send_frame(frames[0] if len(frames) == 1 else b"".join(frames))

    def _handle_event(self, parts: list[bytes], outbox: dict[Connection, list[bytes]]) -> None:
        topic, payload = parts
        targets = self.subs.targets(topic)
        if not targets:
            return
        try:
            event = loads(payload)
        except ValueError:
            logger.warning("dropping a malformed event on {}", topic)
            return
        # Fields starting with '_' are for the edge, not for clients.
        origin = event.pop("_origin", None)
        joined, left = event.pop("_join", None), event.pop("_leave", None)
        ack = event.pop("_ack", None)
        if event.pop("_kick", None):
            # An operator ended this user's sessions (chatroom admin), or one session
            # was logged out (_session: its other connections): what was queued for
            # them before goes out first.
            only_session = event.pop("_session", None)
            for conn in list(targets):
                if only_session is not None and (
                    conn.conn_id == origin
                    or conn.session is None
                    or conn.session.session_id != only_session
                ):
                    continue
                frames = outbox.pop(conn, None)
                if frames:
                    conn.send_frame(b"".join(frames))
                conn.say_goodbye(event["code"], event["message"])
            return
        if joined is not None or left is not None:
            self._update_rooms(targets, joined, left)
        frame = frame_payload(dumps(event))
        delivered_to = None
        for conn in list(targets):
            if conn.conn_id != origin and not conn.closing:
                outbox.setdefault(conn, []).append(frame)
                delivered_to = conn
        if ack and delivered_to is not None:
            asyncio.get_running_loop().create_task(self._acknowledge(ack, delivered_to))

    async def _acknowledge(self, ack: dict[str, Any], conn: Connection) -> None:
        """Tell the service a must-deliver push reached the user (see friend.rejected)."""
        try:
            await self.bus.call(
                ack["service"],
                ack["op"],
                ack.get("args"),
                self._context(conn, conn.session),
                retry=True,
            )
        except ServiceError as exc:
            logger.warning("could not acknowledge {}: {}", ack.get("op"), exc.code)

    def _update_rooms(self, conns: set[Connection], joined: int | None, left: int | None) -> None:
        """A user joined or left a room: their sessions here start or stop hearing it."""
        for conn in list(conns):
            session = conn.session
            if session is None:
                continue
            if joined is not None and joined not in session.room_ids:
                session.room_ids.add(joined)
                self.subs.add(room_topic(joined), conn)
            if left is not None and left in session.room_ids:
                session.room_ids.discard(left)
                self.subs.remove(room_topic(left), conn)

    # ------------------------------------------------------------------ requests

    def answer_locally(self, conn: Connection, request_id: Any, op_name: str) -> dict:
        return reply_ok(request_id, time=int(time.time() * 1000))

    async def dispatch(
        self, conn: Connection, request_id: Any, op_name: str, op: Op, args: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Run one request; return the reply followed by any pushes that go after it."""
        try:
            with request_context(op=op_name, conn=conn.conn_id):
                if op.rate is not None:
                    self._spend(conn, op.rate)
                if op_name == "login":
                    result = await self._login(conn, args)
                    pending = result.pop("pending_events", [])
                    return [reply_ok(request_id, **result), *pending]
                if op_name == "logout":
                    return [reply_ok(request_id, **await self._logout(conn))]
                retry = op.idempotent or bool(args.get("client_id"))
                result = await self.bus.call(
                    op.service, op_name, args, self._context(conn, conn.session), retry=retry
                )
                return [reply_ok(request_id, **result)]
        except ServiceError as exc:
            return [reply_error(request_id, exc.code, exc.message, **exc.extra)]

    def _spend(self, conn: Connection, action: str) -> None:
        """Take a token from the action's bucket (per IP before login, else per user);
        raise rate_limited with the wait when there is none."""
        key: object = conn.ip_key if action == "login_ip" else conn.session.user_id
        wait, first = self.buckets[action].take(key)
        if not wait:
            return
        (logger.info if first else logger.debug)("rate limited {} for {}", action, key)
        raise rate_limited(RATE_LIMIT_MESSAGES[action], wait)

    async def _login(self, conn: Connection, args: dict[str, Any]) -> dict[str, Any]:
        if conn.session is not None:
            raise ServiceError(ErrorCode.ALREADY_AUTHENTICATED, "already logged in; log out first")
        auth = await self.bus.call("auth", "login", args, self._context(conn, None))
        user = auth["user"]
        session = Session(user["id"], user["username"], auth["session_id"], set())
        snapshot = await self.bus.call(
            "social", "session.open", ctx=self._context(conn, session), retry=True
        )
        if conn.closing:
            return {}
        if conn.session is not None:  # a concurrent login on the same socket won
            raise ServiceError(ErrorCode.ALREADY_AUTHENTICATED, "already logged in; log out first")
        session.room_ids = {room["id"] for room in snapshot["rooms"]}
        conn.logged_in(session)
        self.prelogin.release(conn)
        for topic in session_topics(session):
            self.subs.add(topic, conn)
        return {
            "user": user,
            "token": auth["token"],
            "expires_at": auth["expires_at"],
            "server": {"name": SERVER_NAME, "protocol": PROTOCOL_VERSION},
            "limits": self.limits,
            **snapshot,
        }

    async def _logout(self, conn: Connection) -> dict[str, Any]:
        session = conn.session
        assert session is not None  # needs_login is checked before dispatch
        await self.bus.call("auth", "logout", ctx=self._context(conn, session), retry=True)
        await self._close_session(conn)
        conn.logged_out()
        self._drop_prelogin(self.prelogin.admit(conn))
        return {}
