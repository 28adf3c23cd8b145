"""Group commit for messages: concurrent sends share one transaction.

Every message still gets its seq under its room's row lock and is committed before its
sender is answered (persist, then acknowledge). But instead of one transaction per
message, whoever finds the writer idle becomes the writer and commits everything queued
(any rooms, direct chats included) in one transaction: one UPDATE of the rooms' seq
counters, one multi-row INSERT, one commit. Under load batches grow by themselves; with
no load a batch is one message and nothing waits. After its batch the writer hands the
role to the next waiting sender, so nobody writes for others forever.

Row locks are taken by one UPDATE over the rooms' primary keys, which InnoDB walks in key
order: two replicas batching overlapping rooms queue behind each other instead of
deadlocking.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from chatroom.storage.db import now_ms
from chatroom.storage.schema import messages, rooms

MAX_BATCH = 500


@dataclass
class PendingMessage:
    room_id: int
    sender_id: int
    text: str
    client_id: str | None
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set when this sender is handed the writer role
    row: Any = None
    error: BaseException | None = None


class GroupWriter:
    def __init__(self, engine: Engine, select_messages: Any) -> None:
        self.engine = engine
        self.select_messages = select_messages  # query joining sender name and avatar
        self._lock = threading.Lock()
        self._queue: list[PendingMessage] = []
        self._busy = False

    def write(self, room_id: int, sender_id: int, text: str, client_id: str | None) -> Any:
        """Store one message; returns its row (id, seq, sender name, ...) once committed."""
        pending = PendingMessage(room_id, sender_id, text, client_id)
        with self._lock:
            self._queue.append(pending)
            lead = not self._busy
            self._busy = True
        if not lead:
            pending.done.wait()
            lead = pending.lead
        if lead:
            self._serve()
            pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.row

    def _serve(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            self._commit(batch)
        except IntegrityError:
            # A retried send raced its original into the same batch: store one by one
            # so only the duplicate fails (the caller turns that into the stored copy).
            for pending in batch:
                try:
                    self._commit([pending])
                except Exception as exc:  # noqa: BLE001 - handed to that sender
                    pending.error = exc
        except Exception as exc:  # noqa: BLE001 - every sender of the batch gets it
            for pending in batch:
                pending.error = exc
        with self._lock:
            if self._queue:
                self._queue[0].lead = True  # hand over: it wakes up as the writer
                self._queue[0].done.set()
            else:
                self._busy = False
        for pending in batch:
            pending.done.set()

    def _commit(self, batch: list[PendingMessage]) -> None:
        counts: dict[int, int] = {}
        for pending in batch:
            counts[pending.room_id] = counts.get(pending.room_id, 0) + 1
        room_ids = sorted(counts)
        with self.engine.begin() as conn:
            conn.execute(
                update(rooms)
                .where(rooms.c.id.in_(room_ids))
                .values(last_seq=rooms.c.last_seq + case(counts, value=rooms.c.id, else_=0))
            )
            last = dict(
                conn.execute(select(rooms.c.id, rooms.c.last_seq).where(rooms.c.id.in_(room_ids)))
                .tuples()
                .all()
            )
            next_seq = {room: last[room] - counts[room] + 1 for room in room_ids}
            created = now_ms()
            values = []
            for pending in batch:
                seq = next_seq[pending.room_id]
                next_seq[pending.room_id] += 1
                values.append(
                    {
                        "room_id": pending.room_id,
                        "seq": seq,
                        "sender_id": pending.sender_id,
                        "text": pending.text,
                        "created_at": created,
                        "client_id": pending.client_id,
                    }
                )
            conn.execute(insert(messages), values)
            ranges = [
                and_(messages.c.room_id == room, messages.c.seq > last[room] - counts[room])
                & (messages.c.seq <= last[room])
                for room in room_ids
            ]
            rows = {
                (row.room_id, row.seq): row
                for row in conn.execute(self.select_messages().where(or_(*ranges)))
            }
        for pending, value in zip(batch, values, strict=True):
            pending.row = rows[(value["room_id"], value["seq"])]
