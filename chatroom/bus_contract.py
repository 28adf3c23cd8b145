"""The internal bus contract: what edges, the bus and the services say to each other.

The client never sees any of this (its contract is chatroom.protocol). Every string the
processes behind the edge agree on is spelled here once, and this module imports only
the standard library and chatroom.framing, so the edge and the bus get the contract
without SQLAlchemy.

Requests (edge -> service, through <service>.front / .back), one JSON frame after
ZeroMQ's routing frames:
  {"rid": "e1a2:17", "op": "room.send", "args": {...}, "ctx": {...}, "deadline_ms": 1700000000000}
Replies: {"rid": ..., "ok": true, "result": {...}} or {"rid": ..., "ok": false, "error": {...}}

Events (service -> every edge that subscribed, through events.in / events.out), four
frames: [topic, stamp, control, event]. `event` is the push exactly as clients get it, so
an edge frames and forwards its bytes without decoding them; `control` is a JSON object
of instructions for the edge (CONTROL_FIELDS), or empty; `stamp` says which event of
which publisher it is (EventStamps), so that an edge hearing it through several buses
keeps one copy.
"""

from __future__ import annotations

import os
from typing import Any

from chatroom.framing import dumps, loads

# --------------------------------------------------------------------------- requests

# A health ping every service answers itself (not a handler): its replica, its count.
PING_OP = "_ping"
# Operator ops (chatroom admin) are served only when they arrive on the admin path, which
# only the admin key can enter (chatroom/buskeys.py); never on the ordinary one.
ADMIN_OP_PREFIX = "admin."


class InternalOp:
    """Ops only edges send (never a client: chatroom.protocol.OPS has none of them)."""

    SESSION_OPEN = "session.open"  # social: a login; returns the snapshot
    SESSION_CLOSE = "session.close"  # social: a connection's session ended
    EDGE_HEARTBEAT = "edge.heartbeat"  # social: this edge is alive; how many sessions?
    EDGE_GONE = "edge.gone"  # social: this edge is shutting down, all its users left
    EDGE_RESYNC = "edge.resync"  # social: here are all this edge's sessions
    NOTICE_DELIVERED = "notice.delivered"  # social: a must-deliver push reached its user
    # auth: these sessions were in use until now (closed, or still connected), for
    # account.sessions' last_used_at (tcp_edge/session_use.py).
    SESSIONS_USED = "sessions.used"
    # social: several users' read.marks, each {"ctx", "args"} as its own request would
    # be; answers {"marks": [{"ok", "result" | "error"}]} in order (tcp_edge/read_marks.py).
    READ_MARKS = "read.marks"
    # A user's own export and erase (account.export / account.delete), for the user of
    # the request's ctx: the operators' admin.export / admin.erase / admin.erase_finish
    # on the ordinary path (chatroom/account_steps.py runs them in order).
    SELF_EXPORT = "self.export"  # auth, social, media
    SELF_ERASE = "self.erase"  # social, media: only once auth has marked the account
    SELF_ERASE_FINISH = "self.erase_finish"  # auth


# Session ids in one sessions.used: one UPDATE ... WHERE id IN (...) of bounded size.
SESSIONS_USED_MAX = 2000


class AdminOp:
    """Operator ops (chatroom admin), served on the admin path of the service named."""

    USERS = "admin.users"  # auth
    DISABLE = "admin.disable"  # auth
    ENABLE = "admin.enable"  # auth
    RESET_PASSWORD = "admin.reset_password"  # auth
    KICK = "admin.kick"  # auth
    ONLINE = "admin.online"  # social
    # auth, social, media: what that service keeps about one user (auth by username,
    # the others by the user id auth's reply gives).
    EXPORT = "admin.export"
    # Erasing a user, in this order: auth (mark erased, disable, kick), social, media
    # (their data; they refuse a user auth has not marked), auth's ERASE_FINISH last.
    ERASE = "admin.erase"
    ERASE_FINISH = "admin.erase_finish"  # auth
    # social: a room.* moderation op as the operator (`action`: invite, kick, ban, unban,
    # set_role, update), and a room's audit trail.
    ROOM = "admin.room"
    AUDIT = "admin.audit"


def request(
    rid: str, op: str, args: dict[str, Any], ctx: dict[str, Any], deadline_ms: int | None = None
) -> dict[str, Any]:
    """The envelope of one request. `ctx` says who asks (the edge fills it from the
    connection's session, never from the client's request); `deadline_ms` (wall clock)
    is when the asker stops waiting: a service drops the request after it."""
    body: dict[str, Any] = {"rid": rid, "op": op, "args": args, "ctx": ctx}
    if deadline_ms is not None:
        body["deadline_ms"] = deadline_ms
    return body


def reply_ok(rid: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"rid": rid, "ok": True, "result": result}


def reply_error(rid: Any, error: dict[str, Any]) -> dict[str, Any]:
    """`error` is {"code", "message", ...extra}: chatroom.errors.ServiceError.to_dict()."""
    return {"rid": rid, "ok": False, "error": error}


# --------------------------------------------------------------------------- events


def user_topic(user_id: int) -> bytes:
    """Events for every session of one user."""
    # The trailing '|' stops prefix matching: a subscription to u:1| must not match u:12|.
    return f"u:{user_id}|".encode()


def room_topic(room_id: int) -> bytes:
    """Events for every member of one room."""
    return f"r:{room_id}|".encode()


# Topics of the bus health check (chatroom.health): no edge subscribes to them.
HEALTH_TOPIC_PREFIX = "_health:"
# A service replica's own health socket (CHAT_HEALTH_PORT, 127.0.0.1 only) takes one of
# these requests: ready = can serve (a database round trip); live = the event loop answers.
HEALTH_READY = b"ping"
HEALTH_LIVE = b"live"


class Control:
    """What an event tells the edges besides the push itself (the control frame)."""

    ORIGIN = "_origin"  # conn id: the connection that caused it already knows; skip it
    JOIN = "_join"  # room id: the user joined it; their sessions start hearing it
    LEAVE = "_leave"  # room id: the user left it; their sessions stop hearing it
    ACK = "_ack"  # {"service", "op", "args"}: call it once the push reached a session
    KICK = "_kick"  # true: deliver the push (a closing push), then close the connections
    SESSION = "_session"  # with KICK: only the connections of this session id
    KEEP = "_keep"  # with KICK: not the connections of this session id (the asker's)
    # A room event's author (user id): connections whose user blocks them skip it.
    SENDER = "_sender"
    BLOCK = "_block"  # user id: the user blocked them; their sessions stop hearing them
    UNBLOCK = "_unblock"  # user id: the user unblocked them; their sessions hear them again
    # true: a room's typing hint from SENDER; the edge may merge it with the room's
    # other hints of the next second into one push (services/tcp_edge/typing_hints.py).
    HINT = "_hint"


# Handlers put these keys in the events they publish; the runtime moves them to the
# control frame before publishing, so no client ever sees one.
CONTROL_FIELDS = tuple(value for name, value in vars(Control).items() if name.isupper())


class EventStamps:
    """The stamps of one publishing process's events: 8 random bytes naming the process
    (drawn at start, so a restarted service is a new publisher) and 8 bytes counting its
    events from 1. Each bus carries every event once, so an edge connected to several
    buses gets several copies of each, with the same stamp (services/tcp_edge/dedupe.py)."""

    SIZE = 16

    def __init__(self) -> None:
        self.publisher = os.urandom(8)
        self.count = 0

    def next(self) -> bytes:
        self.count += 1
        return self.publisher + self.count.to_bytes(8, "big")


def event_frames(topic: bytes, event: dict[str, Any], stamp: bytes = b"") -> list[bytes]:
    """The frames publishing `event` on `topic`: its stamp (empty: an event no edge needs
    to tell apart, such as a health check's), its control fields in their own frame
    (empty when there are none), the rest is the push clients get."""
    control: dict[str, Any] = {}
    for key in CONTROL_FIELDS:
        if key in event:
            if not control:
                event = dict(event)  # the caller's dict is left as it was
            control[key] = event.pop(key)
    return [topic, stamp, dumps(control) if control else b"", dumps(event)]


def parse_control(frame: bytes) -> dict[str, Any]:
    """The control frame of an event; raises ValueError if it is not a JSON object."""
    if not frame:
        return {}
    control = loads(frame)
    if not isinstance(control, dict):
        raise ValueError("the control frame must be a JSON object")
    return control


# --------------------------------------------------------------------------- links

# Every bus link pings its peer this often and gives the link up after this long without
# a word from it: a peer that vanished without closing TCP (a killed container's host, a
# partition) is noticed, and the link made again once the peer answers. Until then
# requests routed into the dead link time out, so the timeout is most of the time a lost
# host's clients take to resume elsewhere (6 s gave 8.9-9.6 s against the 10 s target,
# docs/past-one-host.md). libzmq's I/O thread answers the pings, not the Python loop, so
# a process busy for seconds still answers: 3 s is only missed by a peer really gone.
LINK_HEARTBEAT_IVL_MS = 1_000
LINK_HEARTBEAT_TIMEOUT_MS = 3_000


# --------------------------------------------------------------------------- queues

# Events queued per peer before ZeroMQ drops them (live delivery is best effort, sync
# closes gaps, but a burst of fan-out should not be cut at libzmq's default of 1,000).
# Subscription messages, flowing the other way, are never limited: losing one would
# silently deafen an edge.
EVENT_HWM = 100_000
