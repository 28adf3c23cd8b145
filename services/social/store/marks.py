"""Group commit for read markers: the `read.mark`s queued while the previous batch was in
the database share one transaction (the pattern of writer.py, on chatroom.batching).

Why: a mark alone was one transaction of about seven round trips (a pooled connection's
ping, the room, the membership, the marker's select and update, the unread count, the
commit), ~2.3 ms of server CPU, against ~1 µs per delivered message: a room whose
members read as messages arrive spent its time on marks (docs/benchmarks.md, "Typing
and read markers"). A batch takes the same few statements for all its marks: the rooms,
who may read them, the markers before, one upsert keeping the larger seq, the markers
after, the unread counts (one statement for many conversations), who shares receipts.

Each mark is still authorised in the write's transaction (a member of the room, the
lobby's members being everyone it has not banned; either person of a direct chat) and
committed before its reply; a marker still only moves forward, two devices or replicas
marking at once leaving the larger seq.
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine, select

from chatroom.batching import Batcher, Queued
from chatroom.storage.db import now_ms
from chatroom.storage.schema import room_bans, room_members, rooms
from services.social.store.batch_sql import NotMember
from services.social.store.queries import Tx
from services.social.store.reads import Unread
from services.social.store.rooms import DIRECT, PUBLIC
from services.social.store.roundtrips import OneByOne, WriterConnection

MAX_BATCH = 500


class RoomGone(Exception):
    """The room was deleted after the handler found it."""


class SeqAhead(Exception):
    """The seq is past the conversation's last message (`last_seq`)."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(last_seq)
        self.last_seq = last_seq


class MarkRequest(Queued):
    def __init__(self, user_id: int, room_id: int, seq: int, peer_id: int | None) -> None:
        self.user_id = user_id
        self.room_id = room_id
        self.seq = seq
        self.peer_id = peer_id  # the other person of a direct chat; None for a room


class Marked(NamedTuple):
    """What one mark did."""

    room_name: str
    marker: int  # the marker afterwards (a larger one, if another device got there first)
    moved: bool  # this mark moved it
    unread: Unread  # what is left unread after the marker
    receipts: bool  # a direct chat whose two people share receipts, and the marker moved


class MarkWriter:
    def __init__(self, engine: Engine) -> None:
        # A connection of its own, kept between batches: a pooled one's checkout and
        # ping were a fifth of a batch's CPU.
        self._db = WriterConnection(engine, pipelined=False)
        self._batcher: Batcher[MarkRequest] = Batcher(
            "read-marks", self._serve, MAX_BATCH, warm_up=self._db.connect
        )

    def start(self) -> None:
        self._batcher.start()

    def submit(self, user_id: int, room_id: int, seq: int, peer_id: int | None) -> Future:
        """Queue one mark; the future gives its Marked, or NotMember / RoomGone /
        SeqAhead."""
        return self._batcher.submit(MarkRequest(user_id, room_id, seq, peer_id))

    def submit_many(self, marks: Sequence[MarkRequest]) -> list[Future]:
        """Queue marks together (one transaction, up to MAX_BATCH); a future each."""
        return self._batcher.submit_many(marks)

    def _serve(self, batch: list[MarkRequest]) -> list[Any]:
        # Marks may go twice anyway: a marker only moves forward. (Had the lost
        # connection committed after all, the second time reports them as not moved,
        # and their pushes to the user's other devices are skipped: the next mark or
        # sync brings those devices up to date.)
        return self._db.once_more_if_disconnected("read marker writer", lambda: self._commit(batch))

    def _commit(self, batch: list[MarkRequest]) -> list[Any]:
        with self._db.transaction() as trips:
            return mark_batch(Tx(cast(OneByOne, trips).conn), batch)


def mark_batch(tx: Tx, batch: Sequence[MarkRequest]) -> list[Any]:
    """A Marked or an exception per mark, in order."""
    room_ids = sorted({m.room_id for m in batch})
    user_ids = sorted({m.user_id for m in batch})
    found = {
        r.id: r
        for r in tx.conn.execute(
            select(rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq, rooms.c.deleted_at)
            .where(rooms.c.id.in_(room_ids))
        )
    }  # fmt: skip
    # Bans matter only in the lobby, memberships only in other rooms: a batch of lobby
    # marks (the usual one) asks one of the two.
    public = [r.id for r in found.values() if r.kind == PUBLIC]
    grouped = [r.id for r in found.values() if r.kind not in (PUBLIC, DIRECT)]
    members = _pairs(tx, room_members, grouped, user_ids)
    banned = _pairs(tx, room_bans, public, user_ids)

    outcomes: list[Any] = [None] * len(batch)
    wanted: dict[tuple[int, int], int] = {}  # (user, room) -> the largest seq asked
    for i, m in enumerate(batch):
        room = found.get(m.room_id)
        key = (m.user_id, m.room_id)
        if room is None or room.deleted_at is not None:
            outcomes[i] = RoomGone()
        elif not _may_read(room.kind, (m.room_id, m.user_id), members, banned):
            outcomes[i] = NotMember()
        elif m.seq > room.last_seq:
            outcomes[i] = SeqAhead(room.last_seq)
        else:
            wanted[key] = max(wanted.get(key, 0), m.seq)
    if not wanted:
        return outcomes

    before = tx.markers_in(wanted)
    now = now_ms()
    forward = [
        {"user_id": user_id, "room_id": room_id, "seq": seq, "updated_at": now}
        # In key order: two replicas' batches lock the rows they share in one order.
        for (user_id, room_id), seq in sorted(wanted.items())
        if seq > before.get((user_id, room_id), 0)
    ]
    after = before
    if forward:
        tx.upsert_markers(forward)
        after = tx.markers_in(wanted)
    unread = tx.unread_near_end(
        [(u, r, after.get((u, r), 0), found[r].last_seq) for u, r in wanted],
        [r for _, r in wanted if found[r].kind == DIRECT],
    )
    sharing = tx.receipts_on(
        who for m in batch if m.peer_id is not None for who in (m.user_id, m.peer_id)
    )
    for i, m in enumerate(batch):
        if outcomes[i] is not None:
            continue
        key = (m.user_id, m.room_id)
        marker = after.get(key, 0)
        # Of several marks of one conversation in the batch, the largest moved it.
        moved = before.get(key, 0) < m.seq == wanted[key] == marker
        receipts = moved and m.peer_id is not None and {m.user_id, m.peer_id} <= sharing
        outcomes[i] = Marked(found[m.room_id].name, marker, moved, unread[key], receipts)
    return outcomes


def _may_read(
    kind: str, pair: tuple[int, int], members: set[tuple[int, int]], banned: set[tuple[int, int]]
) -> bool:
    """The lobby's readers are everyone it has not banned; a direct chat's are its two
    people (the mark was made from the pair's names); a room's are its members."""
    if kind == PUBLIC:
        return pair not in banned
    return kind == DIRECT or pair in members


def _pairs(tx: Tx, table: Any, room_ids: list[int], user_ids: list[int]) -> set[tuple[int, int]]:
    """(room id, user id) rows of `table` (members or bans) among these rooms and users."""
    if not room_ids:
        return set()
    rows = tx.conn.execute(
        select(table.c.room_id, table.c.user_id).where(
            table.c.room_id.in_(room_ids), table.c.user_id.in_(user_ids)
        )
    )
    return {(r.room_id, r.user_id) for r in rows}
