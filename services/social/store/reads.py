"""Read markers' and read receipts' SQL: how far each user has read each conversation,
unread counts, and who shares their markers in direct chats.

A marker only moves forward. Unread counts are counted, not kept: the messages after
the marker not sent by the user, found through the (room_id, seq) index and counted
only up to UNREAD_CAP + 1 rows per conversation, so a backlog of any size costs at most
that many index entries (docs/protocol.md, Read markers).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatroom.protocol import UNREAD_CAP
from chatroom.storage.db import now_ms
from chatroom.storage.schema import read_markers, read_receipts
from services.social.store.batch_sql import Marks
from services.social.store.counts import CountTerm, run_counts
from services.social.store.mentions import DEFAULT_LEVEL, MentionQueries


class Unread(NamedTuple):
    """What a user has not read of one conversation."""

    read_seq: int  # the marker: seq of the last message read (0: none)
    unread: int  # messages after it from others, counted to UNREAD_CAP + 1
    mentions: int = 0  # of those, the ones that @mention the user (rooms only)

    @property
    def capped(self) -> bool:
        """More than UNREAD_CAP unread: reported as UNREAD_CAP (a client shows "999+")."""
        return self.unread > UNREAD_CAP

    def fields(self) -> dict[str, Any]:
        """As the login reply, sync, read.mark and the read push carry them."""
        return {
            "read_seq": self.read_seq,
            "unread": min(self.unread, UNREAD_CAP),
            "unread_capped": self.capped,
            "mentions": min(self.mentions, UNREAD_CAP),
        }


class ReadQueries(MentionQueries):
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    # ------------------------------------------------------------------ markers

    def markers_of(self, user_ids: Iterable[int]) -> dict[tuple[int, int], int]:
        """(user id, room id) -> marker, for every marker these users have."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = self.conn.execute(
            select(read_markers.c.user_id, read_markers.c.room_id, read_markers.c.seq).where(
                read_markers.c.user_id.in_(ids)
            )
        )
        return {(r.user_id, r.room_id): r.seq for r in rows}

    def markers_in(self, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """(user id, room id) -> marker for the given pairs that have one."""
        wanted = set(pairs)
        if not wanted:
            return {}
        rows = self.conn.execute(
            select(read_markers.c.user_id, read_markers.c.room_id, read_markers.c.seq).where(
                read_markers.c.room_id.in_(sorted({room for _, room in wanted})),
                read_markers.c.user_id.in_(sorted({user for user, _ in wanted})),
            )
        )
        return {(r.user_id, r.room_id): r.seq for r in rows if (r.user_id, r.room_id) in wanted}

    def advance_marker(self, user_id: int, room_id: int, seq: int) -> tuple[int, bool]:
        """Move the user's marker in the room forward to `seq` (never back): the marker
        afterwards, and whether this call moved it. Two devices marking at once are
        applied one after the other (the row's write lock), the larger seq winning."""
        where = (read_markers.c.user_id == user_id, read_markers.c.room_id == room_id)
        old = self.conn.execute(select(read_markers.c.seq).where(*where)).scalar_one_or_none()
        if seq <= (old or 0):
            return old or 0, False  # markers only grow: not past one read a moment ago
        now = now_ms()
        if old is not None:
            moved = self.conn.execute(
                update(read_markers)
                .where(*where, read_markers.c.seq < seq)
                .values(seq=seq, updated_at=now)
            ).rowcount
            if moved:
                return seq, True
        else:
            # No row yet (no locking read: on InnoDB a locked gap would make two first
            # marks deadlock): insert, or keep the larger seq if another got in first.
            self.upsert_markers(
                [{"user_id": user_id, "room_id": room_id, "seq": seq, "updated_at": now}]
            )
        current = self.conn.execute(
            select(read_markers.c.seq).where(*where).with_for_update()
        ).scalar_one()
        return int(current), old is None and current == seq

    def upsert_markers(self, rows: list[dict[str, int]]) -> None:
        """Insert markers (user_id, room_id, seq, updated_at), or move existing ones
        forward to them: an existing larger seq is kept."""
        # Executed as many (one statement, rows as parameters): compiled once and cached,
        # sent as one multi-row INSERT; a VALUES of the rows themselves compiled anew
        # for every batch size (a third of a batch of marks' CPU).
        if self.conn.dialect.name == "sqlite":
            lite = sqlite_insert(read_markers)
            upsert: Any = lite.on_conflict_do_update(
                index_elements=["user_id", "room_id"],
                set_={"seq": func.max(read_markers.c.seq, lite.excluded.seq)},
            )
        else:
            my = mysql_insert(read_markers)
            upsert = my.on_duplicate_key_update(
                seq=func.greatest(read_markers.c.seq, my.inserted.seq)
            )
        self.conn.execute(upsert, rows)

    # ------------------------------------------------------------------ unread counts

    def unread_counts(
        self, wanted: Iterable[tuple[int, int, int, int]], direct: Iterable[int] = ()
    ) -> dict[tuple[int, int], Unread]:
        """For (user id, room id, marker, room's last seq) tuples: (user id, room id) ->
        Unread. A conversation read to its end costs no query; the others are counted
        in statements of COUNT_TERMS_PER_STATEMENT conversations, each count stopping
        after UNREAD_CAP + 1 messages; then the mentions among the unread of rooms
        with any (not of the `direct` chats, which have none)."""
        out: dict[tuple[int, int], Unread] = {}
        terms: list[CountTerm] = []
        for user_id, room_id, marker, last_seq in wanted:
            if last_seq <= marker:
                out[(user_id, room_id)] = Unread(marker, 0)
                continue
            out[(user_id, room_id)] = Unread(marker, 0)
            terms.append(_count_term(user_id, room_id, marker))
        for user_id, room_id, n in run_counts(self.conn, terms):
            out[(user_id, room_id)] = out[(user_id, room_id)]._replace(unread=n)
        no_mentions = set(direct)
        mentioned = self.mention_counts(
            (user_id, room_id, unread.read_seq)
            for (user_id, room_id), unread in out.items()
            if unread.unread and room_id not in no_mentions
        )
        for key, n in mentioned.items():
            out[key] = out[key]._replace(mentions=n)
        return out

    def unread_near_end(
        self, wanted: Iterable[tuple[int, int, int, int]], direct: Iterable[int] = ()
    ) -> dict[tuple[int, int], Unread]:
        """unread_counts, for people reading along (a batch of read.marks): for the
        readers of a room near its end (_near_the_end), the counts come from one read of
        the room's tail instead of a count term per person, each of which reads up to
        UNREAD_CAP + 1 rows. The other pairs go to unread_counts. Counts are capped as
        unread_counts caps them (UNREAD_CAP + 1).

        The tail read is of what is *not* counted: the rows after the lowest marker that
        are not messages (edits, deletes, moderation events) or were sent by one of these
        readers, and their mentions. A room's seqs have no gaps (every seq is one row:
        the writers give back what they refuse, and sync relies on it), so a reader's
        unread is the seqs after their marker less those rows. Reading the messages
        themselves cost ~5 µs a row: a batch of marks from a lobby at 400 messages/s
        whose readers mark every 3 s read ~1,200 rows, for nothing."""
        by_room: dict[int, list[tuple[int, int, int]]] = {}
        for user_id, room_id, marker, last_seq in wanted:
            by_room.setdefault(room_id, []).append((user_id, marker, last_seq))
        no_mentions = set(direct)
        out: dict[tuple[int, int], Unread] = {}
        rest: list[tuple[int, int, int, int]] = []
        sql = Marks("?" if self.conn.dialect.paramstyle == "qmark" else "%s", row_in=False)
        m = sql.mark
        for room_id, in_room in by_room.items():
            last_seq = max(last for _, _, last in in_room)
            readers, far = _near_the_end(in_room, last_seq)
            rest.extend((u, room_id, marker, last) for u, marker, last in far)
            if not readers:
                continue
            low = min(marker for _, marker, _ in readers)
            reader_ids = sorted({u for u, _, _ in readers})
            # Plain SQL, values as driver parameters: as SQLAlchemy expressions, their
            # `IN` lists of the batch's readers cost more to build than to run.
            readers_in = sql.marks(len(reader_ids))
            not_counted = self.conn.exec_driver_sql(
                "SELECT seq, sender_id, kind FROM messages"
                f" WHERE room_id = {m} AND seq > {m} AND seq <= {m}"  # the batch's end
                f" AND (kind <> {m} OR sender_id IN {readers_in}) ORDER BY seq",
                (room_id, low, last_seq, "message", *reader_ids),
            ).all()
            events = [r[0] for r in not_counted if r[2] != "message"]
            sent_by: dict[int, list[int]] = {}
            for seq, sender_id, kind in not_counted:
                if kind == "message":
                    sent_by.setdefault(sender_id, []).append(seq)
            mentioned: dict[int, list[int]] = {}
            if room_id not in no_mentions and last_seq > low:
                for user_id, seq in self.conn.exec_driver_sql(
                    "SELECT user_id, seq FROM mentions"
                    f" WHERE room_id = {m} AND seq > {m} AND seq <= {m}"
                    f" AND user_id IN {readers_in} ORDER BY seq",
                    (room_id, low, last_seq, *reader_ids),
                ):
                    mentioned.setdefault(user_id, []).append(seq)
            for user_id, marker, _ in readers:
                own = sent_by.get(user_id, [])
                unread = max(
                    0,
                    (last_seq - marker)
                    - (len(events) - bisect_right(events, marker))
                    - (len(own) - bisect_right(own, marker)),
                )
                hits = mentioned.get(user_id, [])
                mention_n = len(hits) - bisect_right(hits, marker) if unread else 0
                unread, mention_n = min(unread, UNREAD_CAP + 1), min(mention_n, UNREAD_CAP + 1)
                out[(user_id, room_id)] = Unread(marker, unread, mention_n)
        out.update(self.unread_counts(rest, no_mentions))
        return out

    def unread_of(
        self, user_id: int, room_id: int, marker: int, last_seq: int, direct: bool = False
    ) -> Unread:
        return self.unread_counts(
            [(user_id, room_id, marker, last_seq)], [room_id] if direct else []
        )[(user_id, room_id)]

    def read_states(
        self, conversations: dict[int, list[tuple[int, int, int | None]]]
    ) -> dict[int, dict[int, dict[str, Any]]]:
        """user id -> [(room id, last seq, the other person's id for a direct chat or
        None)] to user id -> room id -> the fields the login reply and sync carry:
        read_seq, unread, unread_capped, mentions, for a room its notification level
        (notify), and peer_read_seq in a direct chat whose two users both share
        receipts. A fixed number of statements for any number of users (plus one per
        COUNT_TERMS_PER_STATEMENT conversations with unread, and as many again for the
        mentions of rooms with unread)."""
        markers = self.markers_of(conversations)
        direct = {room_id for convs in conversations.values() for room_id, _s, p in convs if p}
        wanted = (
            (user_id, room_id, markers.get((user_id, room_id), 0), last_seq)
            for user_id, convs in conversations.items()
            for room_id, last_seq, _peer in convs
        )
        counts = self.unread_counts(wanted, direct)
        levels = self.notify_levels(conversations)
        peers = {peer for convs in conversations.values() for _r, _s, peer in convs if peer}
        sharing = self.receipts_on(set(conversations) | peers) if peers else set()
        shown = [
            (peer, room_id)
            for user_id, convs in conversations.items()
            if user_id in sharing
            for room_id, _s, peer in convs
            if peer in sharing
        ]
        peer_markers = self.markers_in(shown)
        out: dict[int, dict[int, dict[str, Any]]] = {}
        for user_id, convs in conversations.items():
            mine = out[user_id] = {}
            for room_id, _last, peer in convs:
                fields = counts[(user_id, room_id)].fields()
                if peer is None:
                    fields["notify"] = levels.get((user_id, room_id), DEFAULT_LEVEL)
                if peer is not None and user_id in sharing and peer in sharing:
                    fields["peer_read_seq"] = peer_markers.get((peer, room_id), 0)
                mine[room_id] = fields
        return out

    # ------------------------------------------------------------------ receipts

    def receipts_on(self, user_ids: Iterable[int]) -> set[int]:
        """Which of these users share their read markers in direct chats."""
        ids = sorted(set(user_ids))
        if not ids:
            return set()
        rows = self.conn.execute(
            select(read_receipts.c.user_id).where(read_receipts.c.user_id.in_(ids))
        )
        return {r.user_id for r in rows}

    def set_receipts(self, user_id: int, enabled: bool) -> bool:
        """Turn the user's read receipts on or off; whether that changed anything."""
        if not enabled:
            removed = self.conn.execute(
                delete(read_receipts).where(read_receipts.c.user_id == user_id)
            ).rowcount
            return bool(removed)
        if self.receipts_on([user_id]):
            return False
        self.conn.execute(read_receipts.insert().values(user_id=user_id, since=now_ms()))
        return True


def _near_the_end(
    readers: list[tuple[int, int, int]], last_seq: int
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Split a room's (user id, marker, last seq) into those counted from one read of
    the room's tail and those counted each by its own term: the k nearest the end for
    the largest k whose tail (from the k-th marker) is at most k × (UNREAD_CAP + 1)
    rows, what their k terms could read; never one alone (its term is one round trip,
    the tail two). A reader's marker lags the end by the seconds since it marked, so
    at hundreds of messages a second (a busy lobby, the load test) the tail often
    spans more than UNREAD_CAP: splitting by cost keeps those readers on the tail."""
    by_marker = sorted(readers, key=lambda r: r[1], reverse=True)
    k = 0
    for i, (_, marker, _) in enumerate(by_marker, 1):
        if last_seq - marker <= i * (UNREAD_CAP + 1):
            k = i
    if k < 2:
        return [], readers
    return by_marker[:k], by_marker[k:]


def _count_term(user_id: int, room_id: int, marker: int) -> CountTerm:
    """The messages after the marker that the user did not send (a range of the
    (room_id, seq) index; not the edits and deletes)."""
    return CountTerm(
        user_id,
        room_id,
        "messages",
        "room_id = {m} AND seq > {m} AND sender_id <> {m} AND kind = {m}",
        (room_id, marker, user_id, "message"),
    )


def add_read_states(
    tx: ReadQueries,
    rooms_of: dict[int, list[dict[str, Any]]],
    direct_of: dict[int, list[dict[str, Any]]],
) -> set[int]:
    """Put each conversation's read state (read_seq, unread, unread_capped; in a direct
    chat where both share receipts, peer_read_seq) into the login reply's `rooms` and
    `direct` entries of these users; returns the users who share receipts."""
    convs = {
        user_id: [(r["id"], r["last_seq"], None) for r in rooms]
        + [(d["id"], d["last_seq"], d["with"]["id"]) for d in direct_of.get(user_id, [])]
        for user_id, rooms in rooms_of.items()
    }
    states = tx.read_states(convs)
    for user_id, rooms in rooms_of.items():
        for entry in [*rooms, *direct_of.get(user_id, [])]:
            entry.update(states[user_id][entry["id"]])
    return tx.receipts_on(rooms_of)


def read_list(
    tx: ReadQueries, user_id: int, convs: list[Any], peers: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """sync's `read`: the read state of each of the user's conversations (`convs`: rows
    with id and last_seq; `peers`: direct chat id -> the other person), by id."""
    wanted = [(r.id, r.last_seq, peers[r.id]["id"] if r.id in peers else None) for r in convs]
    states = tx.read_states({user_id: wanted})[user_id]
    return [{"id": room_id, **fields} for room_id, fields in states.items()]
