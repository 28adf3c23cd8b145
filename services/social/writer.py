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
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from chatroom.storage.db import now_ms

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
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
        senders = {p.sender_id for p in direct}
        recipients = {p.friend_of_sender for p in direct}
        sql = BatchSql(conn)
        found = conn.exec_driver_sql(
            "SELECT user_id, friend_id FROM friendships"
            f" WHERE user_id IN {sql.marks(len(senders))}"
            f" AND friend_id IN {sql.marks(len(recipients))}",
            (*senders, *recipients),
        )
        pairs = set(found.tuples())
        return {id(p) for p in direct if (p.sender_id, p.friend_of_sender) not in pairs}

    def _insert(self, conn: Connection, batch: list[PendingMessage]) -> list[Any]:
        counts: dict[int, int] = {}
        for pending in batch:
            counts[pending.room_id] = counts.get(pending.room_id, 0) + 1
        room_ids = sorted(counts)
        sql = BatchSql(conn)
        rooms_in = sql.marks(len(room_ids))
        conn.exec_driver_sql(
            f"UPDATE rooms SET last_seq = last_seq + CASE id {sql.repeat(WHEN, len(room_ids))}"
            f" ELSE 0 END WHERE id IN {rooms_in}",
            (*(n for room in room_ids for n in (room, counts[room])), *room_ids),
        )
        found = conn.exec_driver_sql(
            f"SELECT id, last_seq FROM rooms WHERE id IN {rooms_in}", tuple(room_ids)
        )
        last = {room: seq for room, seq in found.tuples()}
        next_seq = {room: last[room] - counts[room] + 1 for room in room_ids}
        created = now_ms()
        keys = []
        params: list[Any] = []
        for pending in batch:
            seq = next_seq[pending.room_id]
            next_seq[pending.room_id] += 1
            keys.append((pending.room_id, seq))
            params += (
                pending.room_id,
                seq,
                pending.sender_id,
                pending.text,
                created,
                pending.client_id,
            )
        conn.exec_driver_sql(
            "INSERT INTO messages (room_id, seq, sender_id, text, created_at, client_id)"
            f" VALUES {sql.repeat(sql.marks(6), len(batch), ', ')}",
            tuple(params),
        )
        spans = [(room, last[room] - counts[room] + 1, last[room]) for room in room_ids]
        found = conn.exec_driver_sql(
            STORED_MESSAGES + sql.repeat(SEQ_SPAN, len(spans), " OR "),
            tuple(n for span in spans for n in span),
        )
        rows = {(row.room_id, row.seq): row for row in found}
        return [rows[key] for key in keys]


# The writer's statements are plain SQL, not SQLAlchemy expressions: they are the hot
# path, and building and compiling an expression per batch cost more than the database
# work itself. Values only ever travel as driver parameters. The SQL runs unchanged on
# MySQL, MariaDB and SQLite; only the parameter mark differs.
WHEN = "WHEN {m} THEN {m}"
SEQ_SPAN = "(m.room_id = {m} AND m.seq BETWEEN {m} AND {m})"
STORED_MESSAGES = (
    "SELECT m.id, m.room_id, m.seq, m.sender_id, m.text, m.created_at, m.client_id,"
    " u.username, a.hash AS avatar FROM messages m JOIN users u ON u.id = m.sender_id"
    " LEFT JOIN avatars a ON a.user_id = m.sender_id WHERE "
)


class BatchSql:
    """Parameter marks in the connection's driver's style (%s for PyMySQL, ? for sqlite3)."""

    def __init__(self, conn: Connection) -> None:
        self.mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"

    def marks(self, count: int) -> str:
        return "(" + ", ".join([self.mark] * count) + ")"

    def repeat(self, template: str, count: int, separator: str = " ") -> str:
        return separator.join([template.format(m=self.mark)] * count)
