"""Group commit for messages: concurrent sends share one transaction.

Every message still gets its seq under its room's row lock and is committed before its
sender is answered (persist, then acknowledge). But instead of one transaction per
message, one writer thread commits everything queued (any rooms, direct chats included)
in one transaction: one UPDATE of the rooms' seq counters, one multi-row INSERT, one
commit, sent in as few round trips as the driver allows (batch_sql.py, roundtrips.py). Under load
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

from asyncio import Future
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from chatroom import metrics
from chatroom.batching import Batcher, Queued
from services.social.store.batch_sql import store_batch
from services.social.store.roundtrips import WriterConnection

MAX_BATCH = 500


class PendingMessage(Queued):
    def __init__(
        self,
        room_id: int,
        sender_id: int,
        text: str,
        client_id: str | None,
        friend_of_sender: int | None,
        member_check: bool,
        reply_to: int | None,
        mentioned: tuple[int, ...] = (),
        in_public: bool = False,
    ) -> None:
        self.room_id = room_id
        self.sender_id = sender_id
        self.text = text
        self.client_id = client_id
        self.friend_of_sender = friend_of_sender  # a direct message: must be a friend
        self.member_check = member_check  # the sender must be a member of the room
        self.reply_to = reply_to  # a message of the same conversation it answers
        self.mentioned = mentioned  # users it @mentions (stored for the members)
        self.in_public = in_public  # the lobby: its members are all it has not banned


class GroupWriter:
    def __init__(self, engine: Engine, delay_s: float = 0.0) -> None:
        """`delay_s`: the group commit delay (chatroom/batching.py)."""
        self._db = WriterConnection(engine)
        self._batcher: Batcher[PendingMessage] = Batcher(
            "message-writer",
            self._serve,
            MAX_BATCH,
            warm_up=self._db.connect,
            done=metrics.get().messages_stored,
            delay_s=delay_s,
        )

    def start(self) -> None:
        """Start the writer thread and open its connection now, not at the first send."""
        self._batcher.start()

    def submit(
        self,
        room_id: int,
        sender_id: int,
        text: str,
        client_id: str | None,
        friend_of_sender: int | None = None,
        member_check: bool = False,
        reply_to: int | None = None,
        mentioned: tuple[int, ...] = (),
        in_public: bool = False,
    ) -> Future:
        """Queue one message; the future gives its row (id, seq, sender name, ...) once
        committed, or the error that stopped it. The checks are made in the write's own
        transaction: with `friend_of_sender` that user must be the sender's friend
        (NotFriends), with `member_check` the sender a member of the room (NotMember; in
        a public room, `in_public`, not banned: Banned) allowed to post there (in
        announcement mode a moderator or owner: ReadOnly);
        a client_id already stored for the sender in this room gives AlreadyStored;
        `reply_to` must be a message of this room (NoSuchReply); of the `mentioned`
        users, those who are members get a mention row (the row's `mentions`)."""
        pending = PendingMessage(
            room_id,
            sender_id,
            text,
            client_id,
            friend_of_sender,
            member_check,
            reply_to,
            mentioned,
            in_public,
        )
        return self._batcher.submit(pending)

    def _serve(self, batch: list[PendingMessage]) -> list[Any]:
        """A row or an exception per message (any other error: the whole batch's)."""
        try:
            return self._db.once_more_if_disconnected("message writer", lambda: self._commit(batch))
        except IntegrityError:
            # A retried send raced its original (in another replica's batch) into the
            # database: store one by one so only the duplicate fails (the caller turns
            # that into the stored copy).
            return [self._commit_alone(pending) for pending in batch]

    def _commit_alone(self, pending: PendingMessage) -> Any:
        try:
            (row,) = self._commit([pending])
        except Exception as exc:  # noqa: BLE001 - handed to that sender
            return exc
        return row

    def _commit(self, batch: list[PendingMessage]) -> list[Any]:
        with self._db.transaction() as trips:
            return store_batch(trips, batch)
