"""Group commit for read markers: the `read.mark`s queued while the previous batch was in
the database share one transaction (the pattern of writer.py, on chatroom.batching).

Why: a mark alone was one transaction of about seven round trips (a pooled connection's
ping, the room, the membership, the marker's select and update, the unread count, the
commit), ~2.3 ms of server CPU, against ~1 µs per delivered message: a room whose
members read as messages arrive spent its time on marks (docs/benchmarks.md, "Typing
and read markers"). A batch takes the same few statements for all its marks: the rooms,
who may read them, the markers before (locked), one upsert keeping the larger seq, the
unread counts (one statement for many conversations), who shares receipts. The
statements are plain SQL (batch_sql.py's way), not SQLAlchemy expressions: building
those, with `IN` lists of the batch's users, cost social more than the rest of a mark
(docs/benchmarks.md, "Session 12").

Each mark is still authorised in the write's transaction (a member of the room, the
lobby's members being everyone it has not banned; either person of a direct chat) and
committed before its reply; a marker still only moves forward, two devices or replicas
marking at once leaving the larger seq.
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from chatroom.batching import Batcher, Queued
from chatroom.storage.db import now_ms
from services.social.store.batch_sql import Marks, NotMember, Statement
from services.social.store.queries import Tx
from services.social.store.reads import Unread
from services.social.store.rooms import DIRECT, PUBLIC
from services.social.store.roundtrips import OneByOne, WriterConnection

MAX_BATCH = 500
# MySQL/MariaDB: 1213 a deadlock, 1205 a lock wait timeout (chatroom/runtime.py's,
# which retries a handler's transaction the same way).
LOCK_CONFLICT_CODES = (1213, 1205)
LOCK_CONFLICT_ATTEMPTS = 3


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
    # The user has another live session to tell (a `read` push); a user on one device
    # has nobody to tell, and the push cost more than the mark (docs/benchmarks.md).
    elsewhere: bool
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
        for attempt in range(1, LOCK_CONFLICT_ATTEMPTS + 1):
            try:
                return self._db.once_more_if_disconnected(
                    "read marker writer", lambda: self._commit(batch)
                )
            except OperationalError as exc:
                # Rolled back whole (a deadlock with another replica's batch over a
                # first marker's gap, or a Galera certification conflict): once more.
                if _error_code(exc) not in LOCK_CONFLICT_CODES or attempt == LOCK_CONFLICT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _commit(self, batch: list[MarkRequest]) -> list[Any]:
        with self._db.transaction() as trips:
            return mark_batch(cast(OneByOne, trips), batch)


def mark_batch(trips: OneByOne, batch: Sequence[MarkRequest]) -> list[Any]:
    """A Marked or an exception per mark, in order. Plain SQL with the values as driver
    parameters (batch_sql.py's way): SQLAlchemy expressions with `IN` lists of a
    batch's users cost more to build and run than the database's work (~70 µs a mark
    of social's CPU in a batch of 90 lobby marks; ~30 µs now)."""
    sql = Marks(trips.mark, trips.row_in)
    room_ids = sorted({m.room_id for m in batch})
    user_ids = sorted({m.user_id for m in batch})
    (rows,) = trips.run(_rooms(sql, room_ids))
    found = {r[0]: _Room(*r) for r in rows}
    # Bans matter only in the lobby, memberships only in other rooms: a batch of lobby
    # marks (the usual one) asks one of the two.
    public = [r.id for r in found.values() if r.kind == PUBLIC]
    grouped = [r.id for r in found.values() if r.kind not in (PUBLIC, DIRECT)]
    members = pairs_in(trips, sql, "room_members", grouped, user_ids)
    banned = pairs_in(trips, sql, "room_bans", public, user_ids)

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

    # In key order: two replicas' batches lock the rows they share in one order.
    keys = sorted(wanted)
    _share_profiles(trips, sql, sorted({u for u, _ in keys}))
    before = _locked_markers(trips, sql, keys)
    now = now_ms()
    forward = [
        (u, r, wanted[(u, r)], now) for u, r in keys if wanted[(u, r)] > before.get((u, r), 0)
    ]
    if forward:
        trips.run(_upsert(sql, forward, trips.conn.dialect.name))
    # The markers now, without reading them again: the read above saw the newest ones
    # and locked them (on SQLite the transaction is the only writer), and the upsert
    # keeps the larger of each marker and the seq asked.
    after = {key: max(before.get(key, 0), wanted[key]) for key in keys}
    unread = Tx(trips.conn).unread_near_end(
        [(u, r, after[(u, r)], found[r].last_seq) for u, r in keys],
        [r for _, r in keys if found[r].kind == DIRECT],
    )
    elsewhere = _on_several_devices(trips, sql, sorted({u for u, _, _, _ in forward}))
    peers = [who for m in batch if m.peer_id is not None for who in (m.user_id, m.peer_id)]
    sharing = Tx(trips.conn).receipts_on(peers) if peers else set()
    for i, m in enumerate(batch):
        if outcomes[i] is not None:
            continue
        key = (m.user_id, m.room_id)
        marker = after[key]
        # Of several marks of one conversation in the batch, the largest moved it.
        moved = before.get(key, 0) < m.seq == wanted[key] == marker
        receipts = moved and m.peer_id is not None and {m.user_id, m.peer_id} <= sharing
        outcomes[i] = Marked(
            found[m.room_id].name, marker, moved, m.user_id in elsewhere, unread[key], receipts
        )
    return outcomes


class _Room(NamedTuple):
    id: int
    name: str
    kind: str
    last_seq: int
    deleted_at: int | None


def _may_read(
    kind: str, pair: tuple[int, int], members: set[tuple[int, int]], banned: set[tuple[int, int]]
) -> bool:
    """The lobby's readers are everyone it has not banned; a direct chat's are its two
    people (the mark was made from the pair's names); a room's are its members."""
    if kind == PUBLIC:
        return pair not in banned
    return kind == DIRECT or pair in members


def _rooms(sql: Marks, room_ids: list[int]) -> Statement:
    where = f"id IN {sql.marks(len(room_ids))}"
    return f"SELECT id, name, kind, last_seq, deleted_at FROM rooms WHERE {where}", tuple(room_ids)


def pairs_in(
    trips: OneByOne, sql: Marks, table: str, room_ids: list[int], user_ids: list[int]
) -> set[tuple[int, int]]:
    """(room id, user id) rows of `table` (room_members or room_bans, this module's
    constants) among these rooms and users."""
    if not room_ids:
        return set()
    where = f"room_id IN {sql.marks(len(room_ids))} AND user_id IN {sql.marks(len(user_ids))}"
    (rows,) = trips.run(
        (f"SELECT room_id, user_id FROM {table} WHERE {where}", (*room_ids, *user_ids))
    )
    return {(int(r[0]), int(r[1])) for r in rows}


def _share_profiles(trips: OneByOne, sql: Marks, user_ids: list[int]) -> None:
    """The markers' users' profiles, share-locked until the commit, in id order
    (before the markers, as a login and the other writers lock a profile first). A
    login of one of them locks its profile FOR UPDATE, records its session, then reads
    the markers for its snapshot: so it either committed before this batch counts the
    user's sessions (_on_several_devices: it is told by a push) or waits for this commit
    (its snapshot has the new marker). SQLite: the transaction is the only writer."""
    if trips.conn.dialect.name == "sqlite" or not user_ids:
        return
    where = f"user_id IN {sql.marks(len(user_ids))}"
    trips.run(
        (
            # MySQL 8.4's FOR SHARE is a syntax error on MariaDB; this works on both.
            f"SELECT user_id FROM profiles WHERE {where} ORDER BY user_id LOCK IN SHARE MODE",
            tuple(user_ids),
        )
    )


def _on_several_devices(trips: OneByOne, sql: Marks, user_ids: list[int]) -> set[int]:
    """Those of `user_ids` with more than one live session (stale rows of an edge not yet
    reaped count too: a push to nobody is harmless; a missed one is not)."""
    if not user_ids:
        return set()
    where = f"user_id IN {sql.marks(len(user_ids))}"
    (rows,) = trips.run(
        (
            f"SELECT user_id FROM live_sessions WHERE {where} GROUP BY user_id HAVING COUNT(*) > 1",
            tuple(user_ids),
        )
    )
    return {int(r[0]) for r in rows}


def _locked_markers(
    trips: OneByOne, sql: Marks, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """(user id, room id) -> marker, for those of `keys` that have one: the newest
    committed, locked until the commit (FOR UPDATE; a missing one's gap too, so nobody
    inserts it meanwhile). SQLite has no FOR UPDATE: its transaction (BEGIN IMMEDIATE)
    is the only writer. The rooms and the users as two IN lists, not one of (user,
    room) rows: MariaDB spent ~40 % more CPU on the row form (a batch of one room's
    marks, the usual one, asks exactly its pairs either way)."""
    lock = "" if trips.conn.dialect.name == "sqlite" else " FOR UPDATE"
    room_ids = sorted({room for _, room in keys})
    user_ids = sorted({user for user, _ in keys})
    where = f"room_id IN {sql.marks(len(room_ids))} AND user_id IN {sql.marks(len(user_ids))}"
    (rows,) = trips.run(
        (
            f"SELECT user_id, room_id, seq FROM read_markers WHERE {where}{lock}",
            (*room_ids, *user_ids),
        )
    )
    wanted = set(keys)
    found = {(int(r[0]), int(r[1])): int(r[2]) for r in rows}
    return {key: seq for key, seq in found.items() if key in wanted}


def _upsert(sql: Marks, rows: list[tuple[int, int, int, int]], dialect: str) -> Statement:
    """Insert the markers, or move existing ones forward to them (an existing larger
    seq is kept)."""
    values = sql.repeat("({m}, {m}, {m}, {m})", len(rows), ", ")
    insert = f"INSERT INTO read_markers (user_id, room_id, seq, updated_at) VALUES {values}"
    if dialect == "sqlite":
        keep = " ON CONFLICT (user_id, room_id) DO UPDATE SET seq = max(seq, excluded.seq)"
    else:
        keep = " ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))"
    return insert + keep, tuple(v for row in rows for v in row)


def _error_code(exc: OperationalError) -> Any:
    args = getattr(exc.orig, "args", ())
    return args[0] if args else None
