"""Typing's membership checks, batched: the (room, user) pairs whose hints social no
longer trusts (handlers/typing.py) are checked together, on a connection of the
checker's own, by one thread.

Why: each check was a worker thread, a pooled connection and its ping, and a select:
~650 µs of social's CPU, and at 1,000 members with 5 % typing in 10 s bouts, ~10 a
second. Under load the pool also grew to serve the checks at once (each new connection
a login to the database). With the marks' own cost cut, the checks were as much of
social's CPU as the marks (docs/benchmarks.md, "Session 12").
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Engine

from chatroom.batching import Batcher, Queued
from services.social.store.batch_sql import Marks
from services.social.store.marks import pairs_in
from services.social.store.rooms import DIRECT, PUBLIC, RoomIdentity
from services.social.store.roundtrips import OneByOne, WriterConnection

MAX_BATCH = 500


class MemberCheck(Queued):
    def __init__(self, room: RoomIdentity, user_id: int) -> None:
        self.room = room
        self.user_id = user_id


class MemberChecks:
    def __init__(self, engine: Engine) -> None:
        self._db = WriterConnection(engine, pipelined=False)
        self._batcher: Batcher[MemberCheck] = Batcher(
            "member-checks", self._serve, MAX_BATCH, warm_up=self._db.connect
        )

    def start(self) -> None:
        self._batcher.start()

    def submit(self, room: RoomIdentity, user_id: int) -> Future:
        """Queue one check; the future gives whether the user may post to the room as a
        member (rooms.is_member's rule: the lobby's members are everyone it has not
        banned). Direct chats are not rooms: False."""
        return self._batcher.submit(MemberCheck(room, user_id))

    def _serve(self, batch: list[MemberCheck]) -> list[bool]:
        # Only reads: safe to run again on a fresh connection.
        return self._db.once_more_if_disconnected("member checks", lambda: self._check(batch))

    def _check(self, batch: list[MemberCheck]) -> list[bool]:
        with self._db.transaction() as trips:
            return members_among(cast(OneByOne, trips), batch)


def members_among(trips: OneByOne, batch: Sequence[MemberCheck]) -> list[bool]:
    """For each check, whether its user is a member of its room: two statements for
    the batch (the lobby's bans, the other rooms' members)."""
    sql = Marks(trips.mark, trips.row_in)
    user_ids = sorted({c.user_id for c in batch})
    public = sorted({c.room.id for c in batch if c.room.kind == PUBLIC})
    grouped = sorted({c.room.id for c in batch if c.room.kind not in (PUBLIC, DIRECT)})
    banned = pairs_in(trips, sql, "room_bans", public, user_ids)
    members = pairs_in(trips, sql, "room_members", grouped, user_ids)
    return [
        (c.room.id, c.user_id) not in banned
        if c.room.kind == PUBLIC
        else c.room.kind != DIRECT and (c.room.id, c.user_id) in members
        for c in batch
    ]
