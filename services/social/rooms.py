"""Rooms and their messages: lookup, membership, send (persist-then-ack) and history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from loguru import logger
from sqlalchemy import Connection, Engine, and_, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from chatroom import protocol
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode
from chatroom.storage.db import now_ms
from chatroom.storage.schema import (
    LOBBY,
    avatars,
    live_sessions,
    messages,
    room_members,
    rooms,
    users,
)
from chatroom.visible import shows_something
from services.social.batch_sql import AlreadyStored, NotMember
from services.social.reply_budget import ReplyBudget, encoded_size
from services.social.writer import GroupWriter

PUBLIC = "public"  # everyone is a member (the lobby)
GROUP = "group"  # explicit members, anyone may join
DIRECT = "direct"  # the private conversation of two friends


def room_key(name: str) -> str:
    """Rooms are named like users: one key for 'Lobby', 'LOBBY' and 'Ｌｏｂｂｙ'."""
    return protocol.name_key(name.strip())


def ensure_lobby(engine: Engine) -> None:
    """Create the public room every user belongs to, once (safe for racing replicas)."""
    try:
        with engine.begin() as conn:
            exists = conn.execute(select(rooms.c.id).where(rooms.c.name_key == LOBBY)).first()
            if not exists:
                conn.execute(
                    insert(rooms).values(
                        name=LOBBY, name_key=LOBBY, kind=PUBLIC, created_at=now_ms(), last_seq=0
                    )
                )
    except IntegrityError:
        logger.debug("another replica created the lobby first")


def find_room(conn: Connection, name: str) -> Any:
    row = _room_row(conn, name)
    if row is None:
        raise no_such_room(name)
    return row


def no_such_room(name: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"there is no room called '{name[:64]}'")


def not_direct(room: Any, name: str) -> Any:
    """The room.* ops' rule: a direct conversation is not a room. It is reached only
    through dm.* (whose writes check the friendship), never by its name 'dm:a:b', so
    the answer is the same as for a room that does not exist, whoever asks."""
    if room is not None and room.kind == DIRECT:
        raise no_such_room(name)
    return room


def find_group_or_public(conn: Connection, name: str) -> Any:
    return not_direct(find_room(conn, name), name)


class RoomIdentity(NamedTuple):
    id: int
    name: str
    kind: str


class Remembered:
    """key -> value for values that never change once they exist (a room's identity, a
    user's id), loaded from the database the first time only. Bounded: past `limit`
    entries it starts again from empty."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self._values: dict[Any, Any] = {}
        self.limit = limit

    def get(self, key: Any) -> Any:
        return self._values.get(key)

    def load(self, key: Any, loader: Callable[[], Any]) -> Any:
        value = self._values.get(key)
        if value is None:
            value = loader()
            if len(self._values) >= self.limit:
                self._values.clear()
            self._values[key] = value
        return value


# Rooms are never renamed or deleted, so name -> identity can be remembered for the life
# of the process: it saves a query on every send. (Renaming would have to clear this.)
_identities = Remembered()


def _room_row(conn: Connection, name: str) -> Any:
    return conn.execute(
        select(rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq).where(
            rooms.c.name_key == room_key(name)
        )
    ).first()


def room_identity(engine: Engine, name: str) -> RoomIdentity:
    """The room's id, name and kind; asks the database only the first time."""

    def load() -> RoomIdentity:
        with engine.connect() as conn:
            row = find_room(conn, name)
        return RoomIdentity(row.id, row.name, row.kind)

    return _identities.load(room_key(name), load)


def cached_room(name: str) -> RoomIdentity | None:
    return _identities.get(room_key(name))


def room_identity_if_any(conn: Connection, name: str) -> RoomIdentity | None:
    """The room's identity (remembered), or None if there is no such room."""
    room = cached_room(name)
    if room is None:
        row = _room_row(conn, name)
        room = remember_room(RoomIdentity(row.id, row.name, row.kind)) if row else None
    return room


def remember_room(room: RoomIdentity) -> RoomIdentity:
    return _identities.load(room_key(room.name), lambda: room)


def is_member(conn: Connection, room: Any, user_id: int) -> bool:
    if room.kind == PUBLIC:
        return True
    found = conn.execute(
        select(room_members.c.user_id).where(
            room_members.c.room_id == room.id, room_members.c.user_id == user_id
        )
    ).first()
    return found is not None


def require_member(conn: Connection, room: Any, user_id: int) -> None:
    if not is_member(conn, room, user_id):
        raise not_member(room)


def not_member(room: Any) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN, f"you are not a member of '{room.name}'; join it first"
    )


def room_ref(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "kind": row.kind, "last_seq": row.last_seq}


def conversations_of(conn: Connection, user_id: int, with_direct: bool = True) -> list[Any]:
    """Every room a user hears: public rooms, groups they joined, their direct chats."""
    return conversations_of_many(conn, [user_id], with_direct)[user_id]


def conversations_of_many(
    conn: Connection, user_ids: list[int], with_direct: bool = True
) -> dict[int, list[Any]]:
    """conversations_of for several users at once (two queries for any number)."""
    columns = (rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq)
    public = conn.execute(select(*columns).where(rooms.c.kind == PUBLIC)).all()
    joined = (
        select(room_members.c.user_id, *columns)
        .join(rooms, rooms.c.id == room_members.c.room_id)
        .where(room_members.c.user_id.in_(sorted(set(user_ids))), rooms.c.kind != PUBLIC)
    )
    if not with_direct:
        joined = joined.where(rooms.c.kind != DIRECT)
    heard: dict[int, list[Any]] = {user_id: list(public) for user_id in user_ids}
    for row in conn.execute(joined):
        heard[row.user_id].append(row)
    for user_rooms in heard.values():
        user_rooms.sort(key=lambda room: room.id)
    return heard


def rooms_of_many(conn: Connection, user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The rooms (not direct chats) each user belongs to, as the client lists them."""
    heard = conversations_of_many(conn, user_ids, with_direct=False)
    return {user_id: [room_ref(r) for r in user_rooms] for user_id, user_rooms in heard.items()}


def check_room_name(raw: str) -> str:
    """The name to store (the rule is chatroom.protocol's); bad_request if refused."""
    try:
        name = protocol.check_room_name(raw)
    except protocol.NameRefused as exc:
        raise bad_request("room", str(exc)) from None
    if room_key(name).startswith("dm:"):
        raise bad_request("room", "room names starting with 'dm:' are reserved")
    return name


def create_room(conn: Connection, raw_name: str, user_id: int) -> Any:
    name = check_room_name(raw_name)
    exists = conn.execute(select(rooms.c.id).where(rooms.c.name_key == room_key(name))).first()
    if exists:
        raise ServiceError(ErrorCode.CONFLICT, f"a room called '{name}' exists; join it instead")
    now = now_ms()
    room_id = conn.execute(
        insert(rooms).values(
            name=name,
            name_key=room_key(name),
            kind=GROUP,
            created_by=user_id,
            created_at=now,
            last_seq=0,
        )
    ).inserted_primary_key[0]
    conn.execute(insert(room_members).values(room_id=room_id, user_id=user_id, joined_at=now))
    return find_room(conn, name)


def join_room(conn: Connection, name: str, user_id: int) -> tuple[Any, bool]:
    """Join a group room; returns the room and whether this was a new membership."""
    room = find_group_or_public(conn, name)
    if room.kind != GROUP:
        raise ServiceError(ErrorCode.FORBIDDEN, f"'{room.name}' cannot be joined or left")
    if is_member(conn, room, user_id):
        return room, False
    conn.execute(insert(room_members).values(room_id=room.id, user_id=user_id, joined_at=now_ms()))
    return room, True


def leave_room(conn: Connection, name: str, user_id: int) -> Any:
    room = find_group_or_public(conn, name)
    if room.kind != GROUP:
        raise ServiceError(ErrorCode.FORBIDDEN, f"'{room.name}' cannot be joined or left")
    removed = conn.execute(
        delete(room_members).where(
            room_members.c.room_id == room.id, room_members.c.user_id == user_id
        )
    ).rowcount
    if not removed:
        raise ServiceError(ErrorCode.NOT_FOUND, f"you are not a member of '{room.name}'")
    return room


def list_rooms(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    counts = (
        select(room_members.c.room_id, func.count().label("members"))
        .group_by(room_members.c.room_id)
        .subquery()
    )
    mine = {r.id for r in conversations_of(conn, user_id, with_direct=False)}
    rows = conn.execute(
        select(rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq, counts.c.members)
        .outerjoin(counts, counts.c.room_id == rooms.c.id)
        .where(rooms.c.kind != DIRECT)
        .order_by(rooms.c.kind.desc(), rooms.c.name_key)
    ).all()
    return [{**room_ref(r), "members": r.members or 0, "joined": r.id in mine} for r in rows]


def member_ids(conn: Connection, room: Any, limit: int) -> list[int]:
    """Members of a group; for a public room, the users online now."""
    if room.kind == PUBLIC:
        query = select(live_sessions.c.user_id).distinct()
    else:
        query = select(room_members.c.user_id).where(room_members.c.room_id == room.id)
    return [r[0] for r in conn.execute(query.limit(limit))]


def message_dict(row: Any, room_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "room": room_name,
        "room_id": row.room_id,
        "seq": row.seq,
        # The sender's avatar hash as of now (None: the default), for the message list.
        "from": {"id": row.sender_id, "username": row.username, "avatar": row.avatar},
        "text": row.text,
        "ts": row.created_at,
        "client_id": row.client_id,
    }


_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.room_id,
    messages.c.seq,
    messages.c.sender_id,
    messages.c.text,
    messages.c.created_at,
    messages.c.client_id,
    users.c.username,
    avatars.c.hash.label("avatar"),
)


def select_messages():  # noqa: ANN201 - a SQLAlchemy Select
    return (
        select(*_MESSAGE_COLUMNS)
        .join(users, users.c.id == messages.c.sender_id)
        .outerjoin(avatars, avatars.c.user_id == messages.c.sender_id)
    )


def check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise bad_request("text", "a message cannot be empty")
    if not shows_something(text):
        # Zero-width spaces, joiners, BOMs, variation selectors, tags, controls only:
        # a message that looks empty (and a way to ping a room unseen).
        raise bad_request("text", "a message needs at least one visible character")
    if len(text) > max_chars:
        raise bad_request("text", f"a message is at most {max_chars} characters long")


class RoomResolver(Protocol):
    """Finds the room a message goes to and checks the sender may write there."""

    # The full lookup and check, in a worker thread.
    def __call__(self, engine: Engine) -> RoomIdentity: ...

    # The room without the database when this process knows it, else None; the group
    # commit then checks membership if `must_be_member`.
    def cached(self) -> RoomIdentity | None: ...

    must_be_member: bool


async def store_message(
    engine: Engine,
    writer: GroupWriter,
    resolve_room: RoomResolver,
    sender_id: int,
    text: str,
    client_id: str | None,
    friend_of_sender: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Persist a message in the room `resolve_room` finds (and authorises), and return
    it with True; or the earlier copy with False when this client_id was already stored
    (a retried send). Runs on the event loop: the room is looked up in the thread pool
    only the first time, and the write (with its checks) waits for the group commit
    without a thread. `friend_of_sender`: see GroupWriter.submit (raises NotFriends)."""
    room = resolve_room.cached()
    member_check = room is not None and resolve_room.must_be_member and room.kind != PUBLIC
    if room is None:
        room = await asyncio.to_thread(resolve_room, engine)
    try:
        row = await writer.submit(
            room.id, sender_id, text, client_id, friend_of_sender, member_check
        )
    except NotMember:
        raise not_member(room) from None
    except (AlreadyStored, IntegrityError):
        # A retried send (IntegrityError: its original committed in another replica's
        # batch at the same moment): answer with the stored copy.
        if client_id is None:
            raise
        earlier = await asyncio.to_thread(_find_by_client_id, engine, sender_id, room.id, client_id)
        if earlier is None:
            # Only a database made before client_ids were per conversation (its
            # constraint is still per sender) gets here.
            raise ServiceError(
                ErrorCode.CONFLICT, "this client_id names another message; use a new one"
            ) from None
        return earlier, False
    return message_dict(row, room.name), True


class _Resolver:
    def __init__(
        self, resolve: Callable[[Engine], RoomIdentity], cached: Callable[[], Any], member: bool
    ) -> None:
        self._resolve, self.cached, self.must_be_member = resolve, cached, member

    def __call__(self, engine: Engine) -> RoomIdentity:
        return self._resolve(engine)


def member_room(name: str, user_id: int) -> RoomResolver:
    """A resolver for a room (public or group, never a direct conversation) the user
    must be a member of. Used by every room.* op that reads or writes messages or
    members; the group commit checks membership again in the write's transaction."""

    def resolve(engine: Engine) -> RoomIdentity:
        room = not_direct(room_identity(engine, name), name)
        if room.kind != PUBLIC:
            with engine.connect() as conn:
                require_member(conn, room, user_id)
        return room

    return _Resolver(resolve, lambda: not_direct(cached_room(name), name), member=True)


def known_room(room: RoomIdentity) -> RoomResolver:
    """A resolver for a room the caller has already found and authorised."""
    return _Resolver(lambda _engine: room, lambda: room, member=False)


def _find_by_client_id(engine: Engine, sender_id: int, room_id: int, client_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(
            select_messages()
            .add_columns(rooms.c.name.label("room_name"))
            .join(rooms, rooms.c.id == messages.c.room_id)
            .where(
                and_(
                    messages.c.sender_id == sender_id,
                    messages.c.room_id == room_id,
                    messages.c.client_id == client_id,
                )
            )
        ).first()
    return message_dict(row, row.room_name) if row else None


def history(
    engine: Engine,
    resolve_room: Callable[[Engine], Any],
    before: int | None,
    limit: int,
    max_bytes: int,
) -> dict[str, Any]:
    """The newest messages before `before` (at most `limit`, within `max_bytes` of
    JSON), oldest first; has_more when older ones were left for the next page."""
    room = resolve_room(engine)
    with engine.connect() as conn:
        query = select_messages().where(messages.c.room_id == room.id)
        if before is not None:
            query = query.where(messages.c.seq < before)
        rows = conn.execute(query.order_by(messages.c.seq.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    # Newest first into the budget: what does not fit is older, on the next page.
    kept = ReplyBudget(max_bytes).take_leading(message_dict(r, room.name) for r in page)
    kept.reverse()
    return {
        "room": room.name,
        "messages": kept,
        "has_more": len(rows) > limit or len(kept) < len(page),
    }


def sync_entry(
    conn: Connection,
    room: Any,
    since: int,
    limit: int,
    budget: ReplyBudget,
    peer: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """One conversation of a sync reply: its messages after `since`, oldest first, at
    most `limit` and as many as fit in `budget`; has_more if any were left. None if not
    even its first message fits (the reply is full)."""
    rows = conn.execute(
        select_messages()
        .where(messages.c.room_id == room.id, messages.c.seq > since)
        .order_by(messages.c.seq)
        .limit(limit + 1)
    ).all()
    entry: dict[str, Any] = {**room_ref(room), "has_more": False, "messages": []}
    if peer is not None:
        entry["with"] = peer
    page = rows[:limit]
    if not page:
        return entry
    batch = (message_dict(r, room.name) for r in page)
    first = next(batch)
    # The conversation's header only goes in with at least one of its messages.
    if not budget.take(encoded_size(entry) + encoded_size(first)):
        return None
    taken = [first, *budget.take_leading(batch)]
    entry["messages"] = taken
    entry["has_more"] = len(rows) > limit or len(taken) < len(page)
    return entry
