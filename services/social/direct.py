"""Direct (private) conversations: one room of kind 'direct' per pair of friends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select
from sqlalchemy.exc import IntegrityError

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode
from chatroom.services.social.friends import find_user, username_key
from chatroom.services.social.rooms import DIRECT, room_identity
from chatroom.storage.db import now_ms
from chatroom.storage.schema import friendships, room_members, rooms, users


def direct_name(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"dm:{low}:{high}"


def friend_or_refuse(conn: Connection, me_id: int, username: str) -> Any:
    """The friend called `username`, in one query; on failure, the reason."""
    peer = conn.execute(
        select(users.c.id, users.c.username)
        .join(
            friendships,
            and_(friendships.c.user_id == me_id, friendships.c.friend_id == users.c.id),
        )
        .where(users.c.username_key == username_key(username))
    ).first()
    if peer is not None:
        return peer
    stranger = find_user(conn, username)  # raises not_found for an unknown name
    raise ServiceError(
        ErrorCode.FORBIDDEN, f"you can only message friends; send {stranger.username} a request"
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
