"""Group commit for messages: concurrent sends to one conversation share a transaction.

Every message still gets its seq under the room's row lock and is committed before its
sender is answered (persist, then acknowledge). But instead of one transaction per
message, whoever finds the room idle becomes its writer and commits everything queued
for that room in one transaction: one lock acquisition, one multi-row INSERT, one
commit. Under load the batch grows by itself; with no load a batch is one message and
nothing waits. After its own batch the writer hands the role to the next waiting sender,
so nobody writes for others forever.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from chatroom.storage.db import now_ms
from chatroom.storage.schema import messages, rooms

MAX_BATCH = 500


@dataclass
class PendingMessage:
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
        self._queues: dict[int, list[PendingMessage]] = {}
        self._busy: set[int] = set()

    def write(self, room_id: int, sender_id: int, text: str, client_id: str | None) -> Any:
        """Store one message; returns its row (id, seq, sender name, ...) once committed."""
        pending = PendingMessage(sender_id, text, client_id)
        with self._lock:
            self._queues.setdefault(room_id, []).append(pending)
            lead = room_id not in self._busy
            if lead:
                self._busy.add(room_id)
        if not lead:
            pending.done.wait()
            lead = pending.lead
        if lead:
            self._serve(room_id)
            pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.row

    def _serve(self, room_id: int) -> None:
        with self._lock:
            queue = self._queues.get(room_id, [])
            batch, self._queues[room_id] = queue[:MAX_BATCH], queue[MAX_BATCH:]
        try:
            self._commit(room_id, batch)
        except IntegrityError:
            # A retried send raced its original into the same batch: store one by one
            # so only the duplicate fails (the caller turns that into the stored copy).
            for pending in batch:
                try:
                    self._commit(room_id, [pending])
                except Exception as exc:  # noqa: BLE001 - handed to that sender
                    pending.error = exc
        except Exception as exc:  # noqa: BLE001 - every sender of the batch gets it
            for pending in batch:
                pending.error = exc
        with self._lock:
            waiting = self._queues.get(room_id)
            if waiting:
                waiting[0].lead = True  # hand over: it wakes up as the writer
                waiting[0].done.set()
            else:
                self._queues.pop(room_id, None)
                self._busy.discard(room_id)
        for pending in batch:
            pending.done.set()

    def _commit(self, room_id: int, batch: list[PendingMessage]) -> None:
        with self.engine.begin() as conn:
            # The row lock taken here orders concurrent writers (other replicas too).
            conn.execute(
                update(rooms)
                .where(rooms.c.id == room_id)
                .values(last_seq=rooms.c.last_seq + len(batch))
            )
            last = conn.execute(select(rooms.c.last_seq).where(rooms.c.id == room_id)).scalar_one()
            first = last - len(batch) + 1
            created = now_ms()
            conn.execute(
                insert(messages),
                [
                    {
                        "room_id": room_id,
                        "seq": first + offset,
                        "sender_id": p.sender_id,
                        "text": p.text,
                        "created_at": created,
                        "client_id": p.client_id,
                    }
                    for offset, p in enumerate(batch)
                ],
            )
            rows = conn.execute(
                self.select_messages()
                .where(messages.c.room_id == room_id, messages.c.seq.between(first, last))
                .order_by(messages.c.seq)
            ).all()
        for pending, row in zip(batch, rows, strict=True):
            pending.row = row
