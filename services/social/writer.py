"""Group commit for messages: concurrent sends share one transaction.

Every message still gets its seq under its room's row lock and is committed before its
sender is answered (persist, then acknowledge). But instead of one transaction per
message, one writer thread commits everything queued (any rooms, direct chats included)
in one transaction: one UPDATE of the rooms' seq counters, one multi-row INSERT, one
commit, sent in as few round trips as the driver allows (batch_sql.py). Under load
batches grow by themselves; with no load a batch is one message and nothing waits.

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
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from chatroom.services.social.batch_sql import Refused, WriterConnection, store_batch

MAX_BATCH = 500


@dataclass
class PendingMessage:
    room_id: int
    sender_id: int
    text: str
    client_id: str | None
    friend_of_sender: int | None = None  # a direct message: this user must be a friend
    member_check: bool = False  # the sender must be a member of the room
    result: Future = field(default_factory=Future)  # the stored row, or the error


class GroupWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: deque[PendingMessage] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._db = WriterConnection(engine)

    def submit(
        self,
        room_id: int,
        sender_id: int,
        text: str,
        client_id: str | None,
        friend_of_sender: int | None = None,
        member_check: bool = False,
    ) -> Future:
        """Queue one message; the future gives its row (id, seq, sender name, ...) once
        committed, or the error that stopped it. The checks are made in the write's own
        transaction: with `friend_of_sender` that user must be the sender's friend
        (NotFriends), with `member_check` the sender a member of the room (NotMember);
        a client_id already stored for the sender gives AlreadyStored."""
        pending = PendingMessage(
            room_id, sender_id, text, client_id, friend_of_sender, member_check
        )
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="message-writer", daemon=True
                )
                self._thread.start()
            self._queue.append(pending)
            self._ready.notify()
        return pending.result

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
                    if isinstance(row, Refused):
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
            if isinstance(row, Refused):
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

    def _commit(self, batch: list[PendingMessage]) -> list[Any]:
        with self._db.transaction() as trips:
            return store_batch(trips, batch)
