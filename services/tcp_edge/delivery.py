"""Event delivery: which local connections hear which bus topic, and the fan-out of the
events the services publish to them.

An event arrives as [topic, stamp, control, event] (chatroom.bus_contract): the event
bytes are framed and written to every subscribed connection as they are, never decoded;
only the control frame, usually empty, is read. With several buses each event arrives
once per bus, and a presence push may be sent again after a bus link came back
(chatroom/event_replay.py): only the first copy is delivered (FirstCopies, by its
stamp).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq
from loguru import logger

from chatroom import metrics
from chatroom.bus_client import BusClient
from chatroom.bus_contract import Control, parse_control
from chatroom.errors import ServiceError
from chatroom.framing import HEADER_SIZE, dumps, frame_payload, loads
from chatroom.zmq_io import LoopSocket
from services.tcp_edge.dedupe import FirstCopies
from services.tcp_edge.typing_hints import ROOM_HINTS_WINDOW_S, RoomHints

if TYPE_CHECKING:
    from services.tcp_edge.connection import Connection

# Events taken from the bus before the connections' writes go out: bounds the delay the
# first event of a burst can get (about a millisecond of work per 100 events).
EVENT_BURST = 256
# A frame nobody waits for (a room's merged typing push, the reply to a read.mark or a
# typing hint) waits at most this long for the next burst of events, to go out in the
# same write to its connection: the merged typing pushes alone were a write to every
# member, a tenth of the edge's CPU for 1,000 members with 50 typing while messages
# flowed, and the replies to the marks and hints another write per request
# (docs/benchmarks.md, "Session 12" and "Session 13"). A typing push has waited its
# window (a second) already; this adds at most a twentieth of that, and keeps its place
# in the order of the events (it goes before the next burst's).
WAIT_FOR_BURST_S = 0.05


class BurstLinger:
    """Whether a burst of events waits for more before it is written.

    The edge's cost is per write as much as per event: a burst of one message to a
    100-member room is 100 writes, a burst of three is the same 100. At 1,000 messages
    a second the events come a few at a time (each group commit's messages,
    chatroom/batching.py), so while they stream in, the first event of a burst waits
    `linger_s` (settings.event_linger_ms) for the next ones: 3 ms cut the edge's CPU per
    message by a sixth (docs/benchmarks.md, "Session 19").

    It waits only where waiting merges writes. Not after a pause (no burst within
    STREAMING lingers), like Nagle's algorithm: a quiet conversation pays nothing. Not
    for an event to a few connections here (a private message): the next events are
    rarely for the same ones (measured: direct messages at 1,000/s, 3 ms more latency
    and no CPU saved). And not while the edge's events come slower than one a linger:
    then the wait rarely catches another (at 200 messages/s, 5 ms apart, a third of the
    waits caught one), and cost every message the whole linger (p50 7 ms against 3
    without; docs/benchmarks.md, "Session 21"). The rate is the events of the last
    RATE_WINDOW_S or so, decaying exponentially (one `exp` per burst)."""

    STREAMING = 4
    # Local receivers of a burst's first event from which it waits for company.
    FAN_OUT = 8
    # The time constant of the event rate's estimate: long enough to span many bursts
    # at the rates where waiting pays, short enough to follow a room that goes quiet.
    RATE_WINDOW_S = 0.05

    def __init__(self, linger_s: float) -> None:
        self.linger_s = linger_s
        self._ended = -float("inf")  # when the last burst was taken (loop time)
        self._recent = 0.0  # events counted, each decaying by exp(-age / RATE_WINDOW_S)
        self._counted_at = 0.0  # when _recent was last brought up to date

    def came(self, now: float, events: int) -> None:
        """`events` more came (the burst's, and those taken while it waited)."""
        self._recent = self._recent_at(now) + events
        self._counted_at = now

    def rate(self, now: float) -> float:
        """Events a second at this edge, recently."""
        return self._recent_at(now) / self.RATE_WINDOW_S

    def _recent_at(self, now: float) -> float:
        return self._recent * math.exp((self._counted_at - now) / self.RATE_WINDOW_S)

    def wait_s(self, now: float, receivers: int) -> float:
        """At a burst's first event, which `receivers` connections here hear: how long
        to wait for more (0: write at once). Call after came() for the burst."""
        if (
            self.linger_s
            and receivers >= self.FAN_OUT
            and now - self._ended < self.linger_s * self.STREAMING
            and self.rate(now) * self.linger_s >= 1.0
        ):
            return self.linger_s
        return 0.0

    def taken(self, now: float) -> None:
        """The burst was taken (with what came while it waited)."""
        self._ended = now


class Subscriptions:
    """Which local connections hear which topic; subscribes on the bus on first use."""

    def __init__(self, sub: zmq.Socket[bytes]) -> None:
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


@dataclass
class LoginHold:
    """What a connection's user topic carried while its login was under way: the
    events, to go out after the login reply, and the controls among them (room joins
    and leaves, blocks), to apply once the session exists."""

    topic: bytes
    session_id: int | None = None  # of the session the login opens (a kick may name it)
    frames: list[bytes] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)
    # Must-deliver pushes among them, acknowledged once the login has succeeded (one
    # whose login fails is not delivered: its service keeps it for the next login).
    acks: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        """The held events, decoded (a login's few: the reply they follow is a dict). A
        payload that is not JSON (a service's bug) is left out, not the login failed."""
        events = []
        for frame in self.frames:
            try:
                events.append(loads(frame[HEADER_SIZE:]))
            except (ValueError, RecursionError):
                logger.warning("dropping a held event that is not JSON ({} bytes)", len(frame))
        return events


class Blocks:
    """Whom each local connection's user blocks, indexed by the blocked user: a room
    event carries its author (`_sender`), and one dict lookup finds the connections
    that must skip it. While nobody here blocks its author, an event costs that one
    lookup and nothing per connection (docs/benchmarks.md, Blocking at the edge)."""

    def __init__(self) -> None:
        self.hidden_from: dict[int, set[Connection]] = {}  # blocked id -> connections
        self._of: dict[Connection, set[int]] = {}  # connection -> blocked ids

    def replace(self, conn: Connection, blocked: set[int]) -> None:
        """At login: the snapshot's list (a new login on the connection replaces it)."""
        self.forget(conn)
        for user_id in blocked:
            self.add(conn, user_id)

    def add(self, conn: Connection, user_id: int) -> None:
        self._of.setdefault(conn, set()).add(user_id)
        self.hidden_from.setdefault(user_id, set()).add(conn)

    def remove(self, conn: Connection, user_id: int) -> None:
        self._of.get(conn, set()).discard(user_id)
        hiding = self.hidden_from.get(user_id)
        if hiding is not None:
            hiding.discard(conn)
            if not hiding:
                del self.hidden_from[user_id]

    def forget(self, conn: Connection) -> None:
        for user_id in self._of.pop(conn, set()):
            self.remove(conn, user_id)

    def skipping(self, control: dict[str, Any]) -> set[Connection] | None:
        """The connections that must not get this event: their user blocks its author."""
        if not self.hidden_from:
            return None
        sender = control.get(Control.SENDER)
        return None if sender is None else self.hidden_from.get(sender)


class EventDelivery:
    def __init__(
        self,
        sub: zmq.Socket[bytes],
        bus: BusClient,
        context: Callable[[Connection], dict[str, Any]],
        first_copies: FirstCopies | None = None,
        typing_merge_s: float = ROOM_HINTS_WINDOW_S,
        linger_s: float = 0.0,
    ) -> None:
        self.sub_socket = sub
        self.first_copies = first_copies  # which events came already
        self.subs = Subscriptions(sub)
        self.blocks = Blocks()
        self.bus = bus
        self._context = context  # the bus ctx of a request made for a connection
        pushes = metrics.get().pushes
        self._delivered = pushes.labels("delivered")
        self._dropped = pushes.labels("dropped")
        self._closing = 0  # pushes skipped in a burst: their connection was closing
        self.room_hints = RoomHints(self._deliver_hints, typing_merge_s)
        self._waiting: dict[Connection, list[bytes]] = {}  # frames nobody waits for
        self._waiting_timer: asyncio.TimerHandle | None = None
        self._holds: dict[Connection, LoginHold] = {}  # logins under way
        self.linger = BurstLinger(linger_s)

    # ------------------------------------------------------------------ a login under way

    def hold(self, conn: Connection, topic: bytes, session_id: int | None = None) -> None:
        """`conn` is logging in as the user of `topic`: hear that topic from now, before
        the snapshot the login starts from is read, and keep what comes for after the
        reply. Subscribed only once the snapshot came, the connection never heard a
        change that committed between the snapshot's reads and its subscription: a
        friend who came back online in that instant stayed offline on the new device
        until their next change (tests/test_presence_versions.py; CI, a rolling restart
        in tests/test_host_faults.py)."""
        self._holds[conn] = LoginHold(topic, session_id)
        self.subs.add(topic, conn)

    def release(self, conn: Connection, logged_in: bool) -> LoginHold | None:
        """The login ended. Logged in: the session's own subscriptions include the topic
        (nothing is unsubscribed, so nothing is missed in between), and the caller
        applies the held controls to it and sends the held events after the reply.
        Otherwise the topic is no longer heard for this connection."""
        hold = self._holds.pop(conn, None)
        if hold is not None and not logged_in:
            self.subs.remove(hold.topic, conn)
        return hold

    def apply_controls(self, conns: Iterable[Connection], control: dict[str, Any]) -> None:
        """A user's room joins and leaves, and their blocks, for their connections here."""
        joined, left = control.get(Control.JOIN), control.get(Control.LEAVE)
        blocked, unblocked = control.get(Control.BLOCK), control.get(Control.UNBLOCK)
        for conn in conns:
            if not conn.is_open:  # closing: forgotten already (Edge.connection_closed)
                continue
            if joined is not None:
                conn.join_room(joined)
            if left is not None:
                conn.leave_room(left)
            if blocked is not None:
                self.blocks.add(conn, blocked)
            if unblocked is not None:
                self.blocks.remove(conn, unblocked)

    async def run(self) -> None:
        """Deliver pushed events to local sockets, in bursts: after each event, every
        event already waiting is taken too, and each connection then gets all of its
        frames in one write. A burst of 30 messages to a 100-member room costs 100
        writes instead of 3,000 (and the clients fewer reads)."""
        events = LoopSocket(self.sub_socket)
        loop = asyncio.get_running_loop()
        try:
            while True:
                burst = await events.receive(EVENT_BURST)
                came, now = len(burst), loop.time()
                self.linger.came(now, came)
                if came < EVENT_BURST:
                    receivers = len(self.subs.targets(burst[0][0]))
                    wait_s = self.linger.wait_s(now, receivers)
                    if wait_s:
                        await asyncio.sleep(wait_s)
                        events.take(burst, EVENT_BURST)
                        now = loop.time()
                        self.linger.came(now, len(burst) - came)
                    self.linger.taken(now)
                outbox = self._take_waiting()  # first: they came before this burst
                for parts in burst:
                    self.handle(parts, outbox)
                self._write(outbox)
        finally:
            events.stop()

    def _take_waiting(self) -> dict[Connection, list[bytes]]:
        if self._waiting_timer is not None:
            self._waiting_timer.cancel()
            self._waiting_timer = None
        waiting, self._waiting = self._waiting, {}
        return waiting

    def _write_waiting(self) -> None:
        """No burst came within WAIT_FOR_BURST_S: what waited goes alone."""
        self._write(self._take_waiting())

    def write_soon(self, conn: Connection, frames: list[bytes]) -> None:
        """Frames nobody waits for, written with the next burst of events (to any
        connection), or alone after WAIT_FOR_BURST_S: one write, not one more."""
        self._waiting.setdefault(conn, []).extend(frames)
        if self._waiting_timer is None:
            loop = asyncio.get_running_loop()
            self._waiting_timer = loop.call_later(WAIT_FOR_BURST_S, self._write_waiting)

    def has_waiting(self, conn: Connection) -> bool:
        return conn in self._waiting

    def write_now(self, conn: Connection) -> None:
        """What waits for this connection, written now: it is closing, and what was
        queued for it goes out before the close."""
        frames = self._waiting.pop(conn, None)
        if frames:
            conn.send_frame(b"".join(frames))

    def _write(self, outbox: dict[Connection, list[bytes]]) -> None:
        """Each connection's frames in one write."""
        delivered = dropped = 0
        # Connections logging in keep theirs for after the reply: taken out first, a
        # lookup per login under way, not one per connection written to.
        for conn, hold in self._holds.items() if self._holds else ():
            held = outbox.pop(conn, None)
            if held:
                hold.frames.extend(held)
        for conn, frames in outbox.items():
            if conn.send_frame(frames[0] if len(frames) == 1 else b"".join(frames)):
                delivered += len(frames)
            else:
                dropped += len(frames)
        # One update per burst, not per frame.
        if delivered:
            self._delivered.inc(delivered)
        if dropped or self._closing:
            self._dropped.inc(dropped + self._closing)
            self._closing = 0

    def handle(self, parts: list[bytes], outbox: dict[Connection, list[bytes]]) -> None:
        try:
            topic, stamp, control_frame, payload = parts
        except ValueError:
            logger.warning("dropping an event of {} frames", len(parts))
            return
        targets = self.subs.targets(topic)
        if not targets:
            return
        if self.first_copies is not None and self.first_copies.seen(stamp):
            return  # the same event through another bus
        try:
            control = parse_control(control_frame)
        except ValueError:
            logger.warning("dropping an event with a malformed control frame on {}", topic)
            return
        if control.get(Control.HINT) and self.room_hints.hold(topic, payload, control):
            return  # a room's typing hint, merged with others at its window's end
        frame = frame_payload(payload)
        origin = control.get(Control.ORIGIN)
        if control.get(Control.KICK):
            only, keep = control.get(Control.SESSION), control.get(Control.KEEP)
            self._kick(targets, frame, origin, (only, keep), outbox)
            return
        if control and (
            control.get(Control.JOIN) is not None
            or control.get(Control.LEAVE) is not None
            or control.get(Control.BLOCK) is not None
            or control.get(Control.UNBLOCK) is not None
        ):
            self.apply_controls(list(targets), control)
            for conn in targets if self._holds else ():
                hold = self._holds.get(conn)
                if hold is not None:  # no session yet to apply them to: again after
                    hold.controls.append(control)
        # Without a block of this author here, the loop below is main's as it was.
        skip = self.blocks.skipping(control)
        receivers = list(targets) if skip is None else [c for c in targets if c not in skip]
        delivered_to = None
        for conn in receivers:
            if conn.conn_id != origin:
                if conn.is_open:
                    outbox.setdefault(conn, []).append(frame)
                    delivered_to = conn
                else:
                    self._closing += 1
        ack = control.get(Control.ACK)
        if ack and delivered_to is not None:
            self._ack_once(ack, delivered_to, receivers, origin)

    def _ack_once(
        self, ack: dict[str, Any], last: Connection, receivers: list[Connection], origin: Any
    ) -> None:
        """Acknowledge a must-deliver push through a connection that got it, preferably
        one already logged in: one still logging in acknowledges it only if its login
        succeeds (LoginHold.acks), and may fail."""
        holds = self._holds
        if holds and last in holds:
            settled = next(
                (c for c in receivers if c not in holds and c.is_open and c.conn_id != origin),
                None,
            )
            if settled is None:
                holds[last].acks.append(ack)
                return
            last = settled
        self.acknowledge_soon(ack, last)

    def acknowledge_soon(self, ack: dict[str, Any], conn: Connection) -> None:
        asyncio.get_running_loop().create_task(self._acknowledge(ack, conn))

    def _deliver_hints(
        self, topic: bytes, merged: dict[str, Any], controls: list[dict[str, Any]]
    ) -> None:
        """A room's held typing hints, as one push to each member here: without a
        member's own hints (from their connection, or from another of their devices:
        the client ignores those) and without the hints of whoever they block."""
        hidden: dict[Connection, set[int]] = {}  # connection -> hinting users it must not see
        for control in controls:
            user_id = control[Control.SENDER]
            for conn in self.blocks.hidden_from.get(user_id, ()):
                hidden.setdefault(conn, set()).add(user_id)
        typists = {control.get(Control.ORIGIN): control[Control.SENDER] for control in controls}
        common = frame_payload(dumps(merged))
        outbox: dict[Connection, list[bytes]] = {}
        for conn in self.subs.targets(topic):
            if not conn.is_open:
                self._closing += 1
                continue
            skip = hidden.get(conn, set())
            if conn.conn_id in typists:
                skip = skip | {typists[conn.conn_id]}
            if not skip:
                outbox[conn] = [common]
                continue
            hints = [hint for hint in merged["hints"] if hint["user"]["id"] not in skip]
            if hints:
                outbox[conn] = [frame_payload(dumps({**merged, "hints": hints}))]
        for conn, frames in outbox.items():
            self.write_soon(conn, frames)

    def _kick(
        self,
        targets: set[Connection],
        frame: bytes,
        origin: str | None,
        sessions: tuple[int | None, int | None],
        outbox: dict[Connection, list[bytes]],
    ) -> None:
        """An operator ended this user's sessions (chatroom admin), or the user ended
        some: one session (`only`: its connections), or all but theirs (`keep`: not that
        session's). Never `origin`, the asking connection. What was queued for them goes
        out first, then the closing push itself, then the close."""
        only, keep = sessions
        for conn in list(targets):
            session = conn.session
            session_id: int | None = None
            if session is not None:
                session_id = session.session_id
            elif conn in self._holds:  # logging in: the session it is opening
                session_id = self._holds[conn].session_id
            if (
                (origin is not None and conn.conn_id == origin)
                or (only is not None and session_id != only)
                or (keep is not None and session_id == keep)
            ):
                continue
            self.write_now(conn)
            frames = outbox.pop(conn, None)
            if frames:
                conn.send_frame(b"".join(frames))
            conn.send_frame(frame)
            conn.close()

    async def _acknowledge(self, ack: dict[str, Any], conn: Connection) -> None:
        """Tell the service a must-deliver push reached the user (see friend.rejected)."""
        try:
            await self.bus.call(
                ack["service"], ack["op"], ack.get("args"), self._context(conn), retry=True
            )
        except ServiceError as exc:
            logger.warning("could not acknowledge {}: {}", ack.get("op"), exc.code)
