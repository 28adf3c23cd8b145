"""The client <-> edge wire protocol: what the frames mean.

Requests carry ``op`` and ``id``; replies echo ``id`` with ``ok``; pushes carry ``event``
and no id. This module holds the protocol version, every error and closing code, the
replies and pushes, the op table and the validation of a request against it.
docs/protocol.md documents every op. The bytes of a frame are chatroom.framing; the
rules for usernames and room names are chatroom.names.

This module must stay importable with the standard library alone: the desktop client,
the edge and the load generator all use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The version of this protocol, announced in every login reply (server.protocol).
PROTOCOL_VERSION = 1
SERVER_NAME = "chatroom"  # the login reply's server.name

MAX_ID_CHARS = 64
# Every integer field is a signed 64-bit integer (what the databases store and most
# clients' JSON libraries read); a field's own bounds may be narrower.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ErrorCode:
    """Every error code a reply can carry. docs/protocol.md explains each."""

    BAD_FRAME = "bad_frame"  # frame is not UTF-8 JSON encoding an object
    FRAME_TOO_LARGE = "frame_too_large"  # length prefix above the limit: connection closed
    BAD_REQUEST = "bad_request"  # a field is missing, of the wrong type or out of range
    UNKNOWN_OP = "unknown_op"
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    BAD_CREDENTIALS = "bad_credentials"
    USERNAME_TAKEN = "username_taken"
    INVALID_USERNAME = "invalid_username"
    INVALID_PASSWORD = "invalid_password"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_DELETED = "account_deleted"  # the user deleted the account elsewhere (closing)
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    BANNED = "banned"  # a moderator banned you from this room
    READ_ONLY = "read_only"  # an announcement room: only its moderators and owners post
    LIMIT_REACHED = "limit_reached"  # a per-user cap (e.g. unanswered friend requests)
    INVALID_IMAGE = "invalid_image"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"  # per-IP cap: connection closed
    SERVER_BUSY = "server_busy"  # pre-login budget of the edge: connection closed
    SERVICE_UNAVAILABLE = "service_unavailable"
    SHUTTING_DOWN = "shutting_down"
    KICKED = "kicked"  # an operator ended the session (in a closing push)
    LOGGED_OUT = "logged_out"  # the session was logged out on another connection (closing)
    LOGIN_TIMEOUT = "login_timeout"  # not logged in within login_timeout_s (closing)
    IDLE_TIMEOUT = "idle_timeout"  # nothing received for idle_timeout_s (closing)
    INTERNAL = "internal"
    # Made up by a client library, never sent by the server: the request got no reply in
    # time, or the connection was not there to send it on / broke before the reply.
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"


# The codes a `closing` push (the server's goodbye before it closes the socket) carries.
# (A frame the edge cannot read gets an error reply with id null instead, then the close.)
CLOSING_CODES = frozenset(
    {
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.SERVER_BUSY,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.KICKED,
        ErrorCode.LOGGED_OUT,
        ErrorCode.ACCOUNT_DISABLED,
        ErrorCode.ACCOUNT_DELETED,
        ErrorCode.LOGIN_TIMEOUT,
        ErrorCode.IDLE_TIMEOUT,
    }
)


class MessageError(Exception):
    """One frame or request is unusable; the stream itself is still in sync."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


# --------------------------------------------------------------------------- messages


def reply_ok(request_id: Any, **fields: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, **fields}


def reply_error(request_id: Any, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message, **extra}}


def push(event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, **fields}


def closing_push(code: str, message: str) -> dict[str, Any]:
    """The goodbye the server sends before it closes a connection."""
    return push(CLOSING_EVENT, code=code, message=message)


# --------------------------------------------------------------------------- op schema


@dataclass(frozen=True)
class Field:
    """One request field: its JSON type, whether it is required and its bounds."""

    kind: type | tuple[type, ...]
    required: bool = True
    max_len: int | None = None  # characters for str, items for list, bytes for base64
    min_value: int | None = None
    max_value: int | None = None


@dataclass(frozen=True)
class Op:
    service: str  # "edge" (answered by the edge itself), "auth", "social" or "media"
    fields: dict[str, Field] = field(default_factory=dict)
    needs_login: bool = True
    # Safe to send again after a timeout: it has no effect, or the service de-duplicates
    # it (room.send with a client_id).
    idempotent: bool = False
    # The token bucket it spends from (a key of Settings.rate(); checked by the edge).
    rate: str | None = None
    # Changes who is logged in on the connection (login, logout): requests pipelined
    # after it wait until it is done, so they run as the user it logged in.
    changes_session: bool = False
    # The field naming the conversation (or message) it writes to, or the fields that
    # may (the first present counts): of one connection's requests with the same value,
    # the edge starts each only when the one before is answered, so they are stored in
    # the order they were sent (see order_key).
    ordered_by: str | tuple[str, ...] | None = None
    # Nobody waits for its reply (what it changes, the client has shown already): the
    # edge writes the reply with the next burst of events to the connection, at most
    # WAIT_FOR_BURST_S (services/tcp_edge/delivery.py) later, not in a write of its own.
    reply_may_wait: bool = False


_TEXT = Field(str, max_len=100_000)  # the real limit is a server setting (max_text_chars)
_NAME = Field(str, max_len=256)
_CLIENT_ID = Field(str, required=False, max_len=64)
_BEFORE = Field(int, required=False, min_value=1)
_WITH_ID = Field(int, required=False, min_value=1)
_LIMIT = Field(int, required=False, min_value=1, max_value=10_000)
_MESSAGE_ID = Field(int, min_value=1)
_REPLY_TO = Field(int, required=False, min_value=1)
# A reply carries the start of the message it answers (reply_to.text), at most this long.
QUOTE_CHARS = 200

# Rooms: who is what in one (owner > moderator > member), and who can see it.
ROLES = ("owner", "moderator", "member")
VISIBILITIES = ("public", "private")
TOPIC_CHARS = 200
# What a room's moderation event (a message row of kind "event", a `room.event` push)
# says happened: its `action`.
ROOM_ACTIONS = ("invite", "kick", "ban", "unban", "role", "topic", "announce", "delete")

ROOM_LIST_LIMIT = 200  # rooms in a room.list reply when the client gives no limit
# Typing indicators: a client renews `typing on` while the user types; the edge forwards
# at most one renewal per TYPING_RENEW_S (services/tcp_edge/typing_hints.py), and a
# `typing` push shows for TYPING_EXPIRES_MS unless renewed (two renewals may be lost).
TYPING_RENEW_S = 3.0
TYPING_EXPIRES_MS = 8_000
# Unread counts stop here: a conversation with more says unread = UNREAD_CAP and
# unread_capped = true (a client shows "999+"), so a huge backlog costs a login little.
UNREAD_CAP = 1000
# A room message mentions at most this many people: the first MAX_MENTIONS distinct
# @names count, the rest are plain text (one message cannot page a whole room).
MAX_MENTIONS = 20
# room.notify levels: what a client notifies about in a room (the default: all).
NOTIFY_LEVELS = ("all", "mentions", "none")
# The name an erased (deleted) account's row is given: the author of its messages as
# everyone sees them, the same for every such account. No one can register it (a username
# has no spaces). Its direct chats are reached by its id: dm.history's `with_id`.
DELETED_USER = "deleted user"
# A login's optional device name (chatroom/devices.py has the rule), in characters.
DEVICE_MAX_CHARS = 64
# account.export comes in parts, each a reply within the reply budget: the account (what
# auth and social keep), the messages sent (pages), the avatar. A reply's `next` is the
# request for the following part (null after the last).
EXPORT_PARTS = ("account", "messages", "avatar")
# The assembled export's format version (bump when its shape changes). 2: no reply
# envelope (`id`, `ok`), `<time>_iso` beside every time, deleted messages marked.
EXPORT_FORMAT = 2
_PASSWORD = Field(str, max_len=1024)

OPS: dict[str, Op] = {
    "ping": Op("edge", needs_login=False, idempotent=True),
    "register": Op(
        "auth",
        {"username": _NAME, "password": Field(str, max_len=1024)},
        needs_login=False,
        rate="login_ip",
    ),
    "login": Op(
        "auth",
        {
            "username": Field(str, required=False, max_len=256),
            "password": Field(str, required=False, max_len=1024),
            "token": Field(str, required=False, max_len=256),
            # What the user calls this device, listed by account.sessions.
            "device": Field(str, required=False, max_len=DEVICE_MAX_CHARS),
        },
        needs_login=False,
        rate="login_ip",
        changes_session=True,
    ),
    "logout": Op("auth", changes_session=True),
    "presence.set": Op(
        "social", {"status": Field(str, max_len=1000)}, idempotent=True, rate="presence"
    ),
    "friend.request": Op("social", {"username": _NAME}, idempotent=True, rate="friend_request"),
    # Answering, removing, joining and leaving each write and push to others.
    "friend.accept": Op("social", {"username": _NAME}, rate="membership"),
    "friend.reject": Op("social", {"username": _NAME}, rate="membership"),
    "friend.remove": Op("social", {"username": _NAME}, rate="membership"),
    "friend.list": Op("social", idempotent=True),
    # Blocking (docs/protocol.md, Blocking): adding twice is one block (idempotent).
    "block.add": Op("social", {"username": _NAME}, idempotent=True, rate="block"),
    "block.remove": Op("social", {"username": _NAME}, rate="block"),
    "block.list": Op("social", idempotent=True),
    # visibility: "public" (the default: listed, anyone may join) or "private".
    "room.create": Op(
        "social", {"room": _NAME, "visibility": Field(str, False, 16)}, rate="room_create"
    ),
    "room.join": Op("social", {"room": _NAME}, idempotent=True, rate="membership"),
    "room.leave": Op("social", {"room": _NAME}, rate="membership"),
    # A search: rooms whose name contains `query` (folded like names), at most `limit`
    # (ROOM_LIST_LIMIT when not given), and has_more; a server can have more rooms than
    # one reply may carry.
    "room.list": Op(
        "social",
        {
            "query": Field(str, required=False, max_len=256),
            "limit": Field(int, False, None, 1, 500),
        },
        idempotent=True,
    ),
    "room.members": Op("social", {"room": _NAME}, idempotent=True),
    # Moderation (docs/protocol.md, "Rooms: roles and moderation"): each is a sequenced
    # event in the room, pushed to its members, and a row of the room's audit trail.
    "room.invite": Op("social", {"room": _NAME, "username": _NAME}, rate="moderation"),
    "room.kick": Op("social", {"room": _NAME, "username": _NAME}, rate="moderation"),
    "room.ban": Op("social", {"room": _NAME, "username": _NAME}, rate="moderation"),
    "room.unban": Op("social", {"room": _NAME, "username": _NAME}, rate="moderation"),
    "room.set_role": Op(
        "social",
        {"room": _NAME, "username": _NAME, "role": Field(str, max_len=16)},
        rate="moderation",
    ),
    # At least one of topic and announce.
    "room.update": Op(
        "social",
        {
            "room": _NAME,
            "topic": Field(str, False, 1000),
            "announce": Field(bool, required=False),
        },
        rate="moderation",
    ),
    "room.delete": Op("social", {"room": _NAME}, rate="moderation"),
    "room.bans": Op("social", {"room": _NAME}, idempotent=True),
    "room.send": Op(
        "social",
        {"room": _NAME, "text": _TEXT, "client_id": _CLIENT_ID, "reply_to": _REPLY_TO},
        rate="message",
        ordered_by="room",
    ),
    "room.history": Op(
        "social",
        {"room": _NAME, "before": _BEFORE, "limit": Field(int, False, None, 1, 200)},
        idempotent=True,
    ),
    "dm.send": Op(
        "social",
        {"to": _NAME, "text": _TEXT, "client_id": _CLIENT_ID, "reply_to": _REPLY_TO},
        rate="message",
        ordered_by="to",
    ),
    # Changing a message of one's own by its id (any conversation): a new sequenced event
    # in its conversation, pushed to the others and replayed by sync.
    "message.edit": Op(
        "social", {"message": _MESSAGE_ID, "text": _TEXT}, rate="edit", ordered_by="message"
    ),
    "message.delete": Op("social", {"message": _MESSAGE_ID}, rate="edit", ordered_by="message"),
    # In a room (`room`) or to a friend (`to`): exactly one of them. Coalesced by the
    # edge, which spends from the "typing" bucket only for what it forwards.
    "typing": Op(
        "social",
        {"room": Field(str, False, 256), "to": Field(str, False, 256), "on": Field(bool)},
        idempotent=True,
        # In line with the sender's messages there: "off" then the message, never the
        # message and then a stale "on" that others would show until it expires.
        ordered_by=("room", "to"),
        reply_may_wait=True,
    ),
    # The other person by name (`with`) or, for an erased account, by id (`with_id`).
    "dm.history": Op(
        "social",
        {
            "with": Field(str, required=False, max_len=256),
            "with_id": _WITH_ID,
            "before": _BEFORE,
            "limit": Field(int, False, None, 1, 200),
        },
        idempotent=True,
    ),
    "sync": Op(
        "social",
        {"cursors": Field(dict, required=False, max_len=10_000), "limit": _LIMIT},
        idempotent=True,
    ),
    # Read markers: a conversation is a room by name (`room`) or a direct chat by the
    # other person (`with`, or `with_id`), exactly one of them; the marker only moves
    # forward.
    "read.mark": Op(
        "social",
        {
            "room": Field(str, required=False, max_len=256),
            "with": Field(str, required=False, max_len=256),
            "with_id": _WITH_ID,
            "seq": Field(int, min_value=0),
        },
        idempotent=True,
        rate="read",
        reply_may_wait=True,
    ),
    # A room's notification level for the user: one of NOTIFY_LEVELS.
    "room.notify": Op(
        "social",
        {"room": _NAME, "level": Field(str, max_len=16)},
        idempotent=True,
        rate="notify",
    ),
    # Sharing one's read markers in direct chats (off until turned on).
    "read.receipts": Op("social", {"enabled": Field(bool)}, idempotent=True, rate="read"),
    # Account self-service. Each that writes or ends sessions spends from "account";
    # the old-password checks also count as failed logins (docs/security.md).
    "account.password": Op(
        "auth", {"old_password": _PASSWORD, "new_password": _PASSWORD}, rate="account"
    ),
    "account.sessions": Op("auth", idempotent=True),
    # Without `session`: every session but this one; with it: that one of the user's.
    "account.logout_others": Op(
        "auth", {"session": Field(int, required=False, min_value=1)}, rate="account"
    ),
    # Both run by the edge (services/tcp_edge/account.py), asking auth, social, media.
    "account.export": Op(
        "auth",
        {"part": Field(str, required=False, max_len=16), "after": Field(int, False, None, 0)},
        idempotent=True,
        rate="export",
    ),
    "account.delete": Op("auth", {"password": _PASSWORD}, rate="account", changes_session=True),
    # The image travels base64-encoded; the decoded size limit is avatar_max_bytes.
    "avatar.set": Op("media", {"image": Field(str, max_len=2 * 1024 * 1024)}, rate="avatar"),
    "avatar.get": Op(
        "media",
        {"hash": Field(str, max_len=64), "size": Field(int, False, None, 1, 1024)},
        idempotent=True,
    ),
}

# The widest a character of a string can get in the JSON of an ordinary encoder: a code
# point outside the BMP escaped as a surrogate pair ("\\ud83d\\ude00"), as Python's
# json.dumps does by default. len() counts it as one character.
_WIDEST_CHAR = "\U0001f600"


def longest_request_bytes(op_name: str) -> int:
    """The longest payload an ordinary JSON encoder writes for a valid `op_name` request:
    the longest id, every field at its length limit in the widest characters, the
    default separators. Only for ops whose fields are all bounded strings."""
    request: dict[str, Any] = {"op": op_name, "id": _WIDEST_CHAR * MAX_ID_CHARS}
    for name, spec in OPS[op_name].fields.items():
        if spec.kind is not str or spec.max_len is None:
            raise ValueError(f"{op_name}.{name} is not a bounded string")
        request[name] = _WIDEST_CHAR * spec.max_len
    return len(json.dumps(request))


# Frame payloads are at most this long until the connection has logged in (20,052 bytes):
# the longest valid register / login / ping, so nobody can make the edge hold a full
# max_frame_bytes for a connection that has not proved who it is.
PRELOGIN_MAX_FRAME_BYTES = max(
    longest_request_bytes(name) for name, op in OPS.items() if not op.needs_login
)


# Events the edge pushes (documented in docs/protocol.md).
class Event:
    """Push names: a push is ``{"event": <one of these>, ...}``."""

    MESSAGE = "message"
    MESSAGE_EDITED = "message.edited"  # a message was edited (its new text)
    MESSAGE_DELETED = "message.deleted"  # a message was deleted (a tombstone now)
    CLOSING = "closing"  # the server's goodbye: a code of CLOSING_CODES and a message
    PRESENCE = "presence"
    FRIEND_REQUEST = "friend.request"
    FRIEND_ACCEPTED = "friend.accepted"
    FRIEND_REJECTED = "friend.rejected"
    FRIEND_REMOVED = "friend.removed"
    FRIEND_REQUEST_CLOSED = "friend.request.closed"
    ROOM_JOINED = "room.joined"
    ROOM_LEFT = "room.left"
    ROOM_MEMBER = "room.member"
    ROOM_EVENT = "room.event"  # a moderation action in one of your rooms (who did what)
    AVATAR = "avatar"
    TYPING = "typing"  # someone in one of your conversations is typing (or stopped)
    READ = "read"  # the user's marker moved on another of their connections
    READ_RECEIPT = "read.receipt"  # the other person of a direct chat read it (both share)
    READ_RECEIPTS = "read.receipts"  # the user turned read receipts on/off elsewhere
    BLOCK_ADDED = "block.added"  # the user blocked someone (on any of their sessions)
    BLOCK_REMOVED = "block.removed"  # the user unblocked someone
    ROOM_NOTIFY = "room.notify"  # the user changed a room's notification level elsewhere


CLOSING_EVENT = Event.CLOSING
EVENTS = tuple(value for name, value in vars(Event).items() if name.isupper())


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_field(name: str, spec: Field, value: Any) -> None:
    # bool is an int in Python but not in our protocol.
    if isinstance(value, bool) and spec.kind is not bool or not isinstance(value, spec.kind):
        raise MessageError(
            ErrorCode.BAD_REQUEST, f"field '{name}' must be a {_type_name(spec.kind)}", name
        )
    if isinstance(value, dict | list) and spec.max_len is not None and len(value) > spec.max_len:
        raise MessageError(
            ErrorCode.BAD_REQUEST, f"field '{name}' has more than {spec.max_len} entries", name
        )
    if isinstance(value, str):
        if spec.max_len is not None and len(value) > spec.max_len:
            raise MessageError(
                ErrorCode.BAD_REQUEST,
                f"field '{name}' is longer than {spec.max_len} characters",
                name,
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MessageError(
                ErrorCode.BAD_REQUEST, f"field '{name}' contains an unpaired surrogate", name
            ) from None
    if isinstance(value, int) and not isinstance(value, bool):
        low = INT64_MIN if spec.min_value is None else spec.min_value
        high = INT64_MAX if spec.max_value is None else spec.max_value
        if value < low:
            raise MessageError(
                ErrorCode.BAD_REQUEST, f"field '{name}' must be at least {low}", name
            )
        if value > high:
            raise MessageError(
                ErrorCode.BAD_REQUEST, f"field '{name}' must be at most {high}", name
            )


def request_id_of(msg: dict[str, Any]) -> Any:
    """The request's id if it is usable for a reply, else None."""
    rid = msg.get("id")
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) or (isinstance(rid, str) and len(rid) <= MAX_ID_CHARS):
        return rid
    return None


def validate_request(msg: dict[str, Any]) -> tuple[Op, dict[str, Any]]:
    """Check a decoded request against the op table.

    Returns the op and the declared fields that were present; raises MessageError
    naming the first bad field. Unknown extra fields are ignored (forward compatible).
    """
    if "id" not in msg:
        raise MessageError(ErrorCode.BAD_REQUEST, "field 'id' is required", "id")
    if request_id_of(msg) is None:
        raise MessageError(
            ErrorCode.BAD_REQUEST,
            f"field 'id' must be an integer or a string of at most {MAX_ID_CHARS} characters",
            "id",
        )
    op_name = msg.get("op")
    if not isinstance(op_name, str):
        raise MessageError(ErrorCode.BAD_REQUEST, "field 'op' must be a string", "op")
    op = OPS.get(op_name)
    if op is None:
        raise MessageError(ErrorCode.UNKNOWN_OP, f"unknown op '{op_name[:64]}'", "op")
    args: dict[str, Any] = {}
    for name, spec in op.fields.items():
        if name not in msg or msg[name] is None:
            if spec.required:
                raise MessageError(ErrorCode.BAD_REQUEST, f"field '{name}' is required", name)
            continue
        _check_field(name, spec, msg[name])
        args[name] = msg[name]
    return op, args
