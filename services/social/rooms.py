"""Rooms and their messages: lookup, membership, send (persist-then-ack) and history."""

from __future__ import annotations

import unicodedata
from typing import Any

from loguru import logger
from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode
from chatroom.storage.db import now_ms
from chatroom.storage.schema import LOBBY, messages, room_members, rooms, users

PUBLIC = "public"
GROUP = "group"


def room_key(name: str) -> str:
    return unicodedata.normalize("NFC", name.strip()).casefold()


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
    row = conn.execute(
        select(rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq).where(
            rooms.c.name_key == room_key(name)
        )
    ).first()
    if row is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"there is no room called '{name[:64]}'")
    return row


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
        raise ServiceError(
            ErrorCode.FORBIDDEN, f"you are not a member of '{room.name}'; join it first"
        )


def rooms_of(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    """The rooms a user receives messages from: public rooms and their memberships."""
    member_of = select(room_members.c.room_id).where(room_members.c.user_id == user_id)
    rows = conn.execute(
        select(rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq)
        .where((rooms.c.kind == PUBLIC) | rooms.c.id.in_(member_of))
        .order_by(rooms.c.id)
    ).all()
    return [{"id": r.id, "name": r.name, "kind": r.kind, "last_seq": r.last_seq} for r in rows]


def message_dict(row: Any, room_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "room": room_name,
        "room_id": row.room_id,
        "seq": row.seq,
        "from": {"id": row.sender_id, "username": row.username},
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
)


def _select_messages():  # noqa: ANN202 - a SQLAlchemy Select
    return select(*_MESSAGE_COLUMNS).join(users, users.c.id == messages.c.sender_id)


def check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise bad_request("text", "a message cannot be empty")
    if len(text) > max_chars:
        raise bad_request("text", f"a message is at most {max_chars} characters long")


def store_message(
    engine: Engine, room_name: str, sender_id: int, text: str, client_id: str | None
) -> tuple[dict[str, Any], bool]:
    """Persist a message and return it with True, or the earlier copy with False when
    this client_id was already stored (a retried send)."""
    if client_id is not None:
        earlier = _find_by_client_id(engine, sender_id, client_id)
        if earlier is not None:
            return earlier, False
    try:
        with engine.begin() as conn:
            room = find_room(conn, room_name)
            require_member(conn, room, sender_id)
            # The row lock taken here orders concurrent senders: seqs commit in order.
            conn.execute(
                update(rooms).where(rooms.c.id == room.id).values(last_seq=rooms.c.last_seq + 1)
            )
            seq = conn.execute(select(rooms.c.last_seq).where(rooms.c.id == room.id)).scalar_one()
            created = now_ms()
            message_id = conn.execute(
                insert(messages).values(
                    room_id=room.id,
                    seq=seq,
                    sender_id=sender_id,
                    text=text,
                    created_at=created,
                    client_id=client_id,
                )
            ).inserted_primary_key[0]
            row = conn.execute(_select_messages().where(messages.c.id == message_id)).one()
            return message_dict(row, room.name), True
    except IntegrityError:
        if client_id is None:
            raise
        earlier = _find_by_client_id(engine, sender_id, client_id)
        if earlier is None:
            raise
        return earlier, False


def _find_by_client_id(engine: Engine, sender_id: int, client_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(
            _select_messages()
            .add_columns(rooms.c.name.label("room_name"))
            .join(rooms, rooms.c.id == messages.c.room_id)
            .where(and_(messages.c.sender_id == sender_id, messages.c.client_id == client_id))
        ).first()
    return message_dict(row, row.room_name) if row else None


def history(
    engine: Engine, room_name: str, user_id: int, before: int | None, limit: int
) -> dict[str, Any]:
    with engine.connect() as conn:
        room = find_room(conn, room_name)
        require_member(conn, room, user_id)
        query = _select_messages().where(messages.c.room_id == room.id)
        if before is not None:
            query = query.where(messages.c.seq < before)
        rows = conn.execute(query.order_by(messages.c.seq.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    page.reverse()
    return {
        "room": room.name,
        "messages": [message_dict(r, room.name) for r in page],
        "has_more": len(rows) > limit,
    }
