"""Group commit for messages: concurrent sends share one transaction.

Every message still gets its seq under its room's row lock and is committed before its
sender is answered (persist, then acknowledge). But instead of one transaction per
message, one writer thread commits everything queued (any rooms, direct chats included)
in one transaction: one UPDATE of the rooms' seq counters, one multi-row INSERT, one
commit. Under load batches grow by themselves; with no load a batch is one message and
nothing waits.

Senders do not wait in a thread of their own: `submit` queues the message and returns a
future (the social service awaits it on its event loop). So the batch size is bounded by
how many sends are in flight, not by how many worker threads there are, and the worker
threads are free for other requests meanwhile.

Row locks are taken by one UPDATE over the rooms' primary keys, which InnoDB walks in key
order: two replicas batching overlapping rooms queue behind each other instead of
deadlocking.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy import Connection, Engine, and_, case, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from chatroom.storage.db import now_ms
from chatroom.storage.schema import friendships, messages, rooms

MAX_BATCH = 500
# The writer keeps its database connection between batches (no pool checkout and
# liveness ping per batch); after this long unused it takes a fresh, pinged one.
KEEP_CONNECTION_S = 30.0


@dataclass
class PendingMessage:
    room_id: int
    sender_id: int
    text: str
    client_id: str | None
    friend_of_sender: int | None = None  # a direct message: this user must be a friend
    result: Future = field(default_factory=Future)  # the stored row, or the error


class NotFriends(Exception):
    """A direct message to someone who is (no longer) the sender's friend."""


class GroupWriter:
    def __init__(self, engine: Engine, select_messages: Any) -> None:
        self.engine = engine
        self.select_messages = select_messages  # query joining sender name and avatar
        self._queue: deque[PendingMessage] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._conn_used = 0.0

    def submit(
        self,
        room_id: int,
        sender_id: int,
        text: str,
        client_id: str | None,
        friend_of_sender: int | None = None,
    ) -> Future:
        """Queue one message; the future gives its row (id, seq, sender name, ...) once
        committed, or the error that stopped it. With `friend_of_sender`, the message is
        stored only if that user is the sender's friend when it commits (NotFriends
        otherwise): the check and the write are one transaction."""
        pending = PendingMessage(room_id, sender_id, text, client_id, friend_of_sender)
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="message-writer", daemon=True
                )
                self._thread.start()
            self._queue.append(pending)
            self._ready.notify()
        return pending.result

    def write(self, room_id: int, sender_id: int, text: str, client_id: str | None) -> Any:
        """Store one message and wait for it (for callers in a worker thread)."""
        return self.submit(room_id, sender_id, text, client_id).result()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                take = min(len(self._queue), MAX_BATCH)
                batch = [self._queue.popleft() for _ in range(take)]
            try:
                self._serve(batch)
            except BaseException:  # never let the writer die: every sender must hear back
                logger.exception("message writer failed a batch of {}", len(batch))
                for pending in batch:
                    if not pending.result.done():
                        pending.result.set_exception(RuntimeError("message writer failed"))

    def _serve(self, batch: list[PendingMessage]) -> None:
        try:
            rows = self._commit_once_more_if_disconnected(batch)
        except IntegrityError:
            # A retried send raced its original into the same batch: store one by one
            # so only the duplicate fails (the caller turns that into the stored copy).
            for pending in batch:
                try:
                    (row,) = self._commit([pending])
                    if isinstance(row, NotFriends):
                        raise row
                    pending.result.set_result(row)
                except Exception as exc:  # noqa: BLE001 - handed to that sender
                    pending.result.set_exception(exc)
            return
        except Exception as exc:  # noqa: BLE001 - every sender of the batch gets it
            for pending in batch:
                pending.result.set_exception(exc)
            return
        for pending, row in zip(batch, rows, strict=True):
            if isinstance(row, NotFriends):
                pending.result.set_exception(row)
            else:
                pending.result.set_result(row)

    def _commit_once_more_if_disconnected(self, batch: list[PendingMessage]) -> list[Any]:
        # The kept connection may have died with a database restart; nothing was
        # committed then, so the batch can go again on a fresh one.
        try:
            return self._commit(batch)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.warning("message writer lost its database connection; reconnecting")
            return self._commit(batch)

    def _connection(self) -> Connection:
        now = time.monotonic()
        conn = self._conn
        if conn is not None and (conn.invalidated or now - self._conn_used > KEEP_CONNECTION_S):
            conn.close()
            conn = None
        if conn is None:
            conn = self._conn = self.engine.connect()
        self._conn_used = now
        return conn

    def _commit(self, batch: list[PendingMessage]) -> list[Any]:
        """Store the batch in one transaction: a row per message, or NotFriends for a
        direct message the sender may not send any more."""
        conn = self._connection()
        with conn.begin():
            refused = self._refused_direct(conn, batch)
            accepted = [p for p in batch if id(p) not in refused]
            rows = self._insert(conn, accepted) if accepted else []
        stored = iter(rows)
        return [NotFriends() if id(p) in refused else next(stored) for p in batch]

    @staticmethod
    def _refused_direct(conn: Connection, batch: list[PendingMessage]) -> set[int]:
        """The direct messages of the batch whose recipient is not the sender's friend."""
        direct = [p for p in batch if p.friend_of_sender is not None]
        if not direct:
            return set()
        found = conn.execute(
            select(friendships.c.user_id, friendships.c.friend_id).where(
                friendships.c.user_id.in_({p.sender_id for p in direct}),
                friendships.c.friend_id.in_({p.friend_of_sender for p in direct}),
            )
        )
        pairs = set(found.tuples())
        return {id(p) for p in direct if (p.sender_id, p.friend_of_sender) not in pairs}

    def _insert(self, conn: Connection, batch: list[PendingMessage]) -> list[Any]:
        counts: dict[int, int] = {}
        for pending in batch:
            counts[pending.room_id] = counts.get(pending.room_id, 0) + 1
        room_ids = sorted(counts)
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
        return [rows[(value["room_id"], value["seq"])] for value in values]
