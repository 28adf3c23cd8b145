"""Direct (private) conversations: one room of kind 'direct' per pair of friends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode
from chatroom.services.social.friends import find_user, username_key
from chatroom.services.social.rooms import DIRECT, Remembered, cached_room, room_identity
from chatroom.storage.db import now_ms
from chatroom.storage.schema import room_members, rooms, users


def direct_name(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"dm:{low}:{high}"


def not_friends(peer: Any) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN, f"you can only message friends; send {peer.username} a request"
    )


def ensure_direct_room(engine: Engine, a: int, b: int) -> None:
    name = direct_name(a, b)
    with engine.connect() as conn:
        if conn.execute(select(rooms.c.id).where(rooms.c.name_key == name)).first():
            return
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
        pass  # both friends wrote first at the same moment; the other one created it


# Usernames never change and accounts are never deleted (only disabled), so a name's
# user can be remembered for the life of the process: a direct message then needs no
# lookup before its write (the friendship is checked in the write's transaction).
_users_by_name = Remembered()


def user_named(engine: Engine, username: str) -> Any:
    """The user (id, username) called `username`; raises not_found."""

    def load() -> Any:
        with engine.connect() as conn:
            return find_user(conn, username)

    return _users_by_name.load(username_key(username), load)


def cached_user(username: str) -> Any:
    return _users_by_name.get(username_key(username))


def cached_direct_room(a: int, b: int) -> Any:
    """The pair's conversation if this process already knows it, else None."""
    return cached_room(direct_name(a, b))


def direct_room(engine: Engine, me_id: int, peer_id: int, create: bool) -> Any:
    """The pair's conversation (id, name, kind), created on first use if `create`."""
    name = direct_name(me_id, peer_id)
    try:
        return room_identity(engine, name)
    except ServiceError:
        if not create:
            raise
    ensure_direct_room(engine, me_id, peer_id)
    return room_identity(engine, name)


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
