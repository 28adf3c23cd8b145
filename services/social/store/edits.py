"""Edits and deletes of messages: each is a row of its own in the conversation (kind
"edit" or "delete", target_id the message), with the conversation's next seq, and the
message itself is changed in the same transaction (edit: its text and edited_at;
delete: its text cleared, deleted_at set, so no text of it stays stored).

Not through the group commit: edits and deletes are rare next to sends, and a plain
transaction keeps the send path as it was. The seq comes from the same per-room counter,
taken under the room's row lock (the first statement of the transaction), so edits,
deletes and sends of one room are committed in seq order and a sync cursor never skips
one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, select, update

from chatroom.storage.db import inserted_id
from chatroom.storage.schema import messages, rooms
from services.social.store.rooms import MESSAGE

EDIT = "edit"
DELETE = "delete"
CHANGES = (EDIT, DELETE)  # the kinds of row that change an earlier message


class Target(NamedTuple):
    """A message an edit or delete names, with its conversation."""

    id: int
    room_id: int
    sender_id: int
    created_at: int
    deleted_at: int | None
    room_name: str
    room_kind: str


def select_targets() -> Select:
    """Messages (kind "message") with their rooms, as Target rows."""
    return (
        select(
            messages.c.id,
            messages.c.room_id,
            messages.c.sender_id,
            messages.c.created_at,
            messages.c.deleted_at,
            rooms.c.name,
            rooms.c.kind,
        )
        .join(rooms, rooms.c.id == messages.c.room_id)
        .where(messages.c.kind == MESSAGE)
    )


class EditQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def message_target(self, message_id: int, lock: bool = False) -> Target | None:
        """The message (kind "message") with this id and its room, or None. `lock`:
        read it FOR UPDATE (the latest committed state, held until the commit)."""
        query = select_targets().where(messages.c.id == message_id)
        if lock:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return Target(*row) if row else None

    def next_seq(self, room_id: int) -> int:
        """The room's next seq, taken: its counter bumped, which locks the room's row
        until the commit (as the group commit does for sends)."""
        self.conn.execute(
            update(rooms).where(rooms.c.id == room_id).values(last_seq=rooms.c.last_seq + 1)
        )
        return self.conn.execute(select(rooms.c.last_seq).where(rooms.c.id == room_id)).scalar_one()

    def change_message(
        self, target: Target, kind: str, sender_id: int, seq: int, now: int, text: str = ""
    ) -> int:
        """Apply an edit (new `text`) or a delete (text cleared) to the target and add
        the event row with `seq`; its id."""
        if kind == EDIT:
            values: dict[str, Any] = {"text": text, "edited_at": now}
        else:
            values = {"text": "", "deleted_at": now}
        self.conn.execute(update(messages).where(messages.c.id == target.id).values(**values))
        return inserted_id(
            self.conn.execute(
                messages.insert().values(
                    room_id=target.room_id,
                    seq=seq,
                    sender_id=sender_id,
                    text="",
                    created_at=now,
                    kind=kind,
                    target_id=target.id,
                )
            )
        )

    def current_texts(self, message_ids: list[int]) -> dict[int, tuple[str, int | None, bool]]:
        """id -> (text, edited_at, deleted) of these messages as they are now."""
        if not message_ids:
            return {}
        rows = self.conn.execute(
            select(
                messages.c.id, messages.c.text, messages.c.edited_at, messages.c.deleted_at
            ).where(messages.c.id.in_(message_ids))
        )
        return {r.id: (r.text, r.edited_at, r.deleted_at is not None) for r in rows}
