"""Opening sessions at login, in batches.

A login (or token resume) records the session, locks the user's profile, and reads the
starting snapshot: rooms, private conversations, friends with their presence, requests
both ways, rejections the user has not heard of. One at a time that was a dozen
statements per login, and a reconnect storm (an edge restarted: thousands of resumes at
once) queued on them. Here every login queued while the previous batch was in the
database is opened in one transaction with the same fixed number of statements, whatever
the batch size.
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from chatroom.batching import Batcher, Queued
from services.social.store.queries import Tx
from services.social.store.reads import add_read_states

MAX_BATCH = 200


class Opened(NamedTuple):
    snapshot: dict[str, Any]  # the login reply's rooms, status, friends, requests, ...
    # The user's new presence version if this was their first live session (friends
    # must be told), else None.
    came_online_as: int | None


class Opening(Queued):
    def __init__(self, user_id: int, edge_id: str, conn_id: str) -> None:
        self.user_id, self.edge_id, self.conn_id = user_id, edge_id, conn_id


class SessionOpener:
    def __init__(self, transaction: Callable[[], AbstractContextManager[Tx]]) -> None:
        self.transaction = transaction
        self._batcher: Batcher[Opening] = Batcher("session-opener", self._open, MAX_BATCH)

    def submit(self, user_id: int, edge_id: str, conn_id: str) -> Future:
        """Open a session (idempotent per conn_id); the future gives an Opened. The
        user's profile must exist."""
        return self._batcher.submit(Opening(user_id, edge_id, conn_id))

    def _open(self, batch: list[Opening]) -> list[Opened]:
        with self.transaction() as tx:
            return open_batch(tx, batch)


def open_batch(tx: Tx, batch: list[Opening]) -> list[Opened]:
    user_ids = sorted({o.user_id for o in batch})
    statuses = tx.lock_profiles(set(user_ids))
    avatars = tx.avatars_of(user_ids)
    came_online_as = tx.open_sessions([(o.user_id, o.edge_id, o.conn_id) for o in batch])
    rooms_of = tx.rooms_of_many(user_ids)
    direct_of = tx.direct_conversations_of_many(user_ids)
    sharing = add_read_states(tx, rooms_of, direct_of)  # unread counts, markers
    # With pending_events, pushed by the edge right after the login reply.
    lists = tx.friend_lists(user_ids, at_login=True)
    return [
        Opened(
            {
                "rooms": rooms_of[o.user_id],
                "direct": direct_of[o.user_id],
                "read_receipts": o.user_id in sharing,
                "status": statuses[o.user_id],
                "avatar": avatars[o.user_id],
                **lists[o.user_id],
            },
            came,
        )
        for o, came in zip(batch, came_online_as, strict=True)
    ]
