"""Direct (private) conversations: one room of kind 'direct' per pair of friends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select
from sqlalchemy.exc import IntegrityError

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode
from chatroom.storage.db import now_ms
from chatroom.storage.schema import room_members, rooms, users
from services.social.friends import are_friends, find_user, username_key
from services.social.rooms import (
    DIRECT,
    Remembered,
    RoomIdentity,
    cached_room,
    remember_room,
    room_identity,
    room_identity_if_any,
)


def direct_name(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"dm:{low}:{high}"


def not_friends(peer: Any) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN, f"you can only message friends; send {peer.username} a request"
    )


def create_direct_room(engine: Engine, a: int, b: int) -> RoomIdentity:
    """Create the pair's conversation (or find the one created at the same moment)."""
    name = direct_name(a, b)
    try:
        with engine.begin() as conn:
            now = now_ms()
            room_id = conn.execute(
                insert(rooms).values(
                    name=name, name_key=name, kind=DIRECT, created_at=now, last_seq=0
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(room_members),
                [
                    {"room_id": room_id, "user_id": a, "joined_at": now},
                    {"room_id": room_id, "user_id": b, "joined_at": now},
                ],
            )
    except IntegrityError:
        # Both friends wrote first at the same moment; the other one created it.
        return room_identity(engine, name)
    return remember_room(RoomIdentity(room_id, name, DIRECT))


# Usernames never change and accounts are never deleted (only disabled), so a name's
# user can be remembered for the life of the process: a direct message then needs no
# lookup before its write (the friendship is checked in the write's transaction).
_users_by_name = Remembered()


def user_named(conn: Connection, username: str) -> Any:
    """The user (id, username) called `username`; raises not_found."""
    return _users_by_name.load(username_key(username), lambda: find_user(conn, username))


def cached_user(username: str) -> Any:
    return _users_by_name.get(username_key(username))


def cached_direct_room(a: int, b: int) -> Any:
    """The pair's conversation if this process already knows it, else None."""
    return cached_room(direct_name(a, b))


def direct_room(engine: Engine, me_id: int, peer_id: int) -> Any:
    """The pair's conversation (id, name, kind); raises not_found if they never wrote."""
    return room_identity(engine, direct_name(me_id, peer_id))


def friend_and_conversation(engine: Engine, me_id: int, username: str) -> tuple[Any, Any]:
    """The friend called `username` and your conversation with them, created on first
    use; raises not_found or not_friends. What is not cached yet is looked up on one
    connection (a cold start sends many of these at once)."""
    with engine.connect() as conn:
        peer = user_named(conn, username)
        if not are_friends(conn, me_id, peer.id):
            raise not_friends(peer)
        room = room_identity_if_any(conn, direct_name(me_id, peer.id))
    if room is None:
        room = create_direct_room(engine, me_id, peer.id)
    return peer, room


def peers_of(conn: Connection, me_id: int, room_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For direct rooms: room id -> the other person."""
    if not room_ids:
        return {}
    rows = conn.execute(
        select(room_members.c.room_id, users.c.id, users.c.username)
        .join(users, users.c.id == room_members.c.user_id)
        .where(room_members.c.room_id.in_(room_ids), room_members.c.user_id != me_id)
    )
    return {r.room_id: {"id": r.id, "username": r.username} for r in rows}


def conversations_of_many(conn: Connection, user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each user's private conversations as the login reply lists them: the room id,
    the other person and the last seq (so a client can count what arrived while it was
    away). One query for any number of users."""
    mine, theirs = room_members.alias("mine"), room_members.alias("theirs")
    rows = conn.execute(
        select(
            mine.c.user_id.label("owner"),
            rooms.c.id,
            rooms.c.last_seq,
            users.c.id.label("peer_id"),
            users.c.username,
        )
        .select_from(
            mine.join(rooms, rooms.c.id == mine.c.room_id)
            .join(theirs, and_(theirs.c.room_id == rooms.c.id, theirs.c.user_id != mine.c.user_id))
            .join(users, users.c.id == theirs.c.user_id)
        )
        .where(mine.c.user_id.in_(sorted(set(user_ids))), rooms.c.kind == DIRECT)
        .order_by(rooms.c.id)
    )
    listed: dict[int, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
    for r in rows:
        listed[r.owner].append(
            {"id": r.id, "with": {"id": r.peer_id, "username": r.username}, "last_seq": r.last_seq}
        )
    return listed
