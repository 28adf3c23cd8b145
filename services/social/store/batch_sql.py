"""The message writer's transaction, in as few database round trips as the driver allows.

A batch is: (for direct messages) which senders are still friends with their recipients;
(for group rooms) which senders are members; (for retried sends) which are stored already;
bump the rooms' seq counters and read them back; insert the messages; read back their
ids (with the sender's name and avatar); commit. One statement at a time that is five or six
round trips, and on a busy two-core machine each round trip costs about a millisecond
of waiting for the database's thread to be scheduled: the batch time, and so every
message's latency and the writer's throughput, was mostly round trips.

So on MySQL/MariaDB the writer's own connection has multi-statement queries enabled and
sends each step's statements together: two round trips per batch, checks included, the
COMMIT riding with the last one (see store_batch). On SQLite (in-process, no round trips)
the same statements run one by one in an ordinary SQLAlchemy transaction (both ways of
sending them: roundtrips.py).

The statements are plain SQL, not SQLAlchemy expressions: building and compiling an
expression per batch cost more than the database work itself. Values only ever travel
as driver parameters; only this module's own constant SQL text is joined together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from chatroom.protocol import QUOTE_CHARS
from chatroom.storage.db import now_ms

Statement = tuple[str, tuple[Any, ...]]


class StoredMessage(NamedTuple):
    id: int
    room_id: int
    seq: int
    sender_id: int
    text: str
    created_at: int
    client_id: str | None
    username: str
    avatar: str | None
    reply: dict[str, Any] | None = None  # the quoted message (reply_to), as sent
    mentions: tuple[int, ...] = ()  # the members it @mentions, as stored


class Outgoing(Protocol):
    """What the writer stores for one message, and what it must check first."""

    room_id: int
    sender_id: int
    text: str
    client_id: str | None
    friend_of_sender: int | None  # a direct message: this user must be the sender's friend
    member_check: bool  # the sender must be a member of the room (see in_public)
    in_public: bool  # the room is public (the lobby): a member is anyone it has not banned
    reply_to: int | None  # a message of the same conversation this one answers
    mentioned: tuple[int, ...]  # users it @mentions: stored for those who are members


class Trips(Protocol):
    mark: str  # the driver's parameter mark
    row_in: bool  # the database takes "(a, b) IN ((1, 2), ...)" (SQLite does not)

    def run(self, *statements: Statement) -> list[list[tuple]]:
        """Execute the statements in order; each one's rows (empty for writes)."""

    def run_and_commit(self, *statements: Statement) -> list[list[tuple]]:
        """Like run, then commit the transaction."""


class Refused(Exception):
    """Why the writer did not store one message of a batch (the rest were stored)."""


class NotFriends(Refused):
    """A direct message to someone who is (no longer) the sender's friend."""


class NotMember(Refused):
    """A message to a room the sender is not (or no longer) a member of."""


class Banned(Refused):
    """A message to the lobby from someone it banned."""


class ReadOnly(Refused):
    """A message from a plain member to a room in announcement mode."""


class NoSuchReply(Refused):
    """reply_to names no message of this conversation (or a deleted one)."""


class AlreadyStored(Refused):
    """A retried send: a message with this client_id from this sender to this
    conversation is stored."""


def store_batch(trips: Trips, batch: Sequence[Outgoing]) -> list[StoredMessage | Refused]:
    """Store the batch in one transaction: the stored row per message, or why not. The
    checks (friendship, membership, an earlier copy) are made in the same transaction
    as the write, so nothing changes between them.

    Two round trips: (1) every room's seq counter bumped by all of its messages and read
    back (with its announcement mode), then the checks; (2) the counters given back what
    the checks refused, the insert, the ids read back, the commit. Refusals are rare (a
    retried send, a message just after unfriending or leaving), so the counters are
    bumped before the checks' answers are in rather than a round trip later; the rooms'
    rows stay locked until the commit, so giving back leaves no gap in any room's seqs.
    The bump comes first: the checks then read under the rooms' locks, after any
    moderation of those rooms committed (a kick, a ban, announcement mode:
    store/moderation.py takes the same lock), so a kicked member's message is never
    stored after the kick."""
    sql = Marks(trips.mark, trips.row_in)
    bumped = _count_by_room(batch)
    checks = _Checks(sql, batch, sorted(bumped))
    _, *read = trips.run(_bump(sql, bumped), *checks.statements)
    found, refused = checks.refusals(read)
    accepted = [p for p in batch if id(p) not in refused]
    given_back = _count_by_room([p for p in batch if id(p) in refused])
    give_back = [_bump(sql, {room: -n for room, n in given_back.items()})] if refused else []
    if not accepted:
        trips.run_and_commit(*give_back)
        return [refused[id(p)] for p in batch]
    counts = _count_by_room(accepted)
    room_ids = sorted(counts)
    last = {room: seq - given_back.get(room, 0) for room, seq in found.items() if room in counts}
    first = {room: last[room] - counts[room] + 1 for room in room_ids}
    next_seq = dict(first)
    created = now_ms()
    keys = []
    values: list[Any] = []
    for pending in accepted:
        seq = next_seq[pending.room_id]
        next_seq[pending.room_id] += 1
        keys.append((pending.room_id, seq))
        values += (pending.room_id, seq, pending.sender_id, pending.text, created)
        values += (pending.client_id, pending.reply_to)
    mentioning = [(p, key) for p, key in zip(accepted, keys, strict=True) if p.mentioned]
    # Only a batch with mentions pays for them (none on the usual path).
    read_back = [_stored_mentions(sql, [key for _, key in mentioning])] if mentioning else []
    *_, stored, mentioned = trips.run_and_commit(
        *give_back,
        (
            "INSERT INTO messages"
            " (room_id, seq, sender_id, text, created_at, client_id, reply_to)"
            f" VALUES {sql.repeat(sql.marks(7), len(accepted), ', ')}",
            tuple(values),
        ),
        *(_mention(sql, p, room, seq) for p, (room, seq) in mentioning),
        (
            STORED_MESSAGES + sql.repeat(SEQ_SPAN, len(room_ids), " OR "),
            tuple(n for room in room_ids for n in (room, first[room], last[room])),
        ),
        *read_back,
    ) + ([] if mentioning else [[]])
    mentions_at: dict[tuple[int, int], list[int]] = {}
    for user_id, room, seq in mentioned:
        mentions_at.setdefault((room, seq), []).append(user_id)
    # Read back only what the database chose (ids) and the sender's name and avatar;
    # the rest is what was just written.
    chosen = {(room, seq): (row_id, name, avatar) for row_id, room, seq, name, avatar in stored}
    rows = []
    for p, (room, seq) in zip(accepted, keys, strict=True):
        row_id, name, avatar = chosen[(room, seq)]
        reply = checks.quotes.get(p.reply_to) if p.reply_to is not None else None
        rows.append(
            StoredMessage(
                row_id,
                room,
                seq,
                p.sender_id,
                p.text,
                created,
                p.client_id,
                name,
                avatar,
                reply,
                tuple(sorted(mentions_at.get((room, seq), ()))),
            )
        )
    in_order = iter(rows)
    return [refused[id(p)] if id(p) in refused else next(in_order) for p in batch]


def quote(
    row_id: int, seq: int, sender_id: int, username: str, text: str, deleted: bool = False
) -> dict[str, Any]:
    """What a reply shows of the message it answers: who, and the start of its text
    (nothing of a deleted one)."""
    return {
        "id": row_id,
        "seq": seq,
        "from": {"id": sender_id, "username": username},
        "text": "" if deleted else text[:QUOTE_CHARS],
        "deleted": deleted,
    }


def _count_by_room(messages: Sequence[Outgoing]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for message in messages:
        counts[message.room_id] = counts.get(message.room_id, 0) + 1
    return counts


def _bump(sql: Marks, by_room: dict[int, int]) -> Statement:
    """Add to each room's seq counter (negative: give back)."""
    room_ids = sorted(by_room)
    return (
        f"UPDATE rooms SET last_seq = last_seq + CASE id {sql.repeat(WHEN, len(room_ids))}"
        f" ELSE 0 END WHERE id IN {sql.marks(len(room_ids))}",
        (*(n for room in room_ids for n in (room, by_room[room])), *room_ids),
    )


def _mention(sql: Marks, message: Outgoing, room_id: int, seq: int) -> Statement:
    """The mentions of one message, for those it names who are members of its room
    (everyone is, of a public room) and do not block its sender: checked here, in the
    message's transaction."""
    user_ids = message.mentioned
    return (
        "INSERT INTO mentions (user_id, room_id, seq)"
        f" SELECT u.id, {sql.mark}, {sql.mark} FROM users u"
        f" WHERE u.id IN {sql.marks(len(user_ids))} AND (EXISTS (SELECT 1 FROM rooms r"
        f" WHERE r.id = {sql.mark} AND r.kind = 'public') OR EXISTS (SELECT 1 FROM"
        f" room_members rm WHERE rm.room_id = {sql.mark} AND rm.user_id = u.id))"
        f" AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id"
        f" AND b.blocked_id = {sql.mark})",
        (room_id, seq, *user_ids, room_id, room_id, message.sender_id),
    )


def _stored_mentions(sql: Marks, keys: list[tuple[int, int]]) -> Statement:
    """Read back who the messages at these (room, seq) mention."""
    return (
        "SELECT user_id, room_id, seq FROM mentions WHERE "
        + sql.tuple_in(("room_id", "seq"), len(keys)),
        tuple(n for key in keys for n in key),
    )


class _Checks:
    """What the first round trip reads (the rooms' bumped seqs, and the checks the batch
    needs), and the messages the checks refuse, each with the reason.

    The reads are one statement, a UNION ALL of a row set per kind (READS), each row
    tagged with its kind in four columns: one result for the driver to parse instead of
    up to five. PyMySQL reads each result's column descriptions in Python: four small
    results cost twice the client CPU of one (178 against 88 µs, measured against
    MariaDB). A reply's original, six columns, is read apart, only by batches with a
    reply_to."""

    def __init__(self, sql: Marks, batch: Sequence[Outgoing], room_ids: list[int]) -> None:
        self.direct = [p for p in batch if p.friend_of_sender is not None]
        self.grouped = [p for p in batch if p.member_check]
        self.public = [p for p in self.grouped if p.in_public]
        self.retried = [p for p in batch if p.client_id is not None]
        self.replies = [p for p in batch if p.reply_to is not None]
        self.quotes: dict[int, dict[str, Any]] = {}  # reply_to id -> its quote
        parts: list[Statement] = [(READS[SEQS] + sql.marks(len(room_ids)), tuple(room_ids))]
        checks: tuple[tuple[int, tuple[str, ...], set[tuple[Any, ...]]], ...] = (
            (FRIENDS, FRIEND_PAIR, {(p.sender_id, p.friend_of_sender) for p in self.direct}),
            (MEMBERS, MEMBER_PAIR, {(p.room_id, p.sender_id) for p in self.grouped}),
            (BANS, MEMBER_PAIR, {(p.room_id, p.sender_id) for p in self.public}),
            (EARLIER, EARLIER_KEY, {_earlier_key(p) for p in self.retried}),
        )
        for kind, columns, pairs in checks:
            if pairs:
                where = sql.tuple_in(columns, len(pairs))
                parts.append((READS[kind] + where, tuple(v for pair in pairs for v in pair)))
        self.statements: list[Statement] = [
            (" UNION ALL ".join(text for text, _ in parts), tuple(v for _, p in parts for v in p))
        ]
        if self.replies:
            # Only sends with a reply_to pay for this (none on the usual path).
            ids = sorted({p.reply_to for p in self.replies if p.reply_to is not None})
            self.statements.append((QUOTED + sql.marks(len(ids)), tuple(ids)))

    def refusals(self, results: list[list[tuple]]) -> tuple[dict[int, int], dict[int, Refused]]:
        """The rooms' seqs after the bump, and by id() of the message: why it must not
        be stored."""
        rows: dict[int, list[tuple[Any, Any, Any]]] = {kind: [] for kind in READS}
        for kind, a, b, c in results[0]:
            rows[kind].append((a, b, c))
        found = {room: seq for room, seq, _ in rows[SEQS]}
        # Only moderators and owners post in announcement mode. (The flag comes back
        # as text, "1" or "0": READS.)
        announcing = {room for room, _, announce in rows[SEQS] if int(announce)}
        refused: dict[int, Refused] = {}
        if self.direct:
            friends = {(a, b) for a, b, _ in rows[FRIENDS]}
            for p in self.direct:
                if (p.sender_id, p.friend_of_sender) not in friends:
                    refused[id(p)] = NotFriends()
        if self.grouped:
            roles = {(room, user): role for room, user, role in rows[MEMBERS]}
            banned = {(a, b) for a, b, _ in rows[BANS]}
            for p in self.grouped:
                pair = (p.room_id, p.sender_id)
                # The lobby has rows only for its moderators: no row there is a member.
                role = roles.get(pair, "member" if p.in_public else None)
                if role is None:
                    refused[id(p)] = NotMember()
                elif pair in banned:
                    refused[id(p)] = Banned()
                elif p.room_id in announcing and role not in POSTERS:
                    refused[id(p)] = ReadOnly()
        if self.retried:
            earlier = set(rows[EARLIER])
            for p in self.retried:
                key = _earlier_key(p)
                if key in earlier:
                    refused.setdefault(id(p), AlreadyStored())
                earlier.add(key)  # a second copy in this very batch is a retry too
        if self.replies:
            rooms = {}
            for row_id, room_id, seq, sender_id, text, username in results[1]:
                rooms[row_id] = room_id
                self.quotes[row_id] = quote(row_id, seq, sender_id, username, text)
            for p in self.replies:
                if rooms.get(p.reply_to) != p.room_id:
                    refused.setdefault(id(p), NoSuchReply())
        return found, refused


def _earlier_key(p: Outgoing) -> tuple[int, int, str | None]:
    # A client_id names one message of one sender in one conversation: reused in
    # another conversation it is another message (it must not answer with this one).
    return (p.sender_id, p.room_id, p.client_id)


# The kinds of rows the first round trip reads (_Checks), and each kind's SELECT: the
# kind, two integer columns, and one of text (or NULL). The flag is cast to text so
# that the column is text in every part, whatever rules a database has for mixing.
SEQS, FRIENDS, MEMBERS, BANS, EARLIER = range(5)
READS = {
    SEQS: f"SELECT {SEQS}, id, last_seq, CAST(announce AS CHAR) FROM rooms WHERE id IN ",
    # Each check looks up exact (a, b) pairs of a two-column key. Not "a IN (...) AND b
    # IN (...)": the optimizer turns that into every combination, 2,500 index ranges
    # for 50 direct messages (for 80 pairs, measured on their own: 3.9 ms against 0.55).
    FRIENDS: f"SELECT {FRIENDS}, user_id, friend_id, NULL FROM friendships WHERE ",
    MEMBERS: f"SELECT {MEMBERS}, room_id, user_id, role FROM room_members WHERE ",
    BANS: f"SELECT {BANS}, room_id, user_id, NULL FROM room_bans WHERE ",
    EARLIER: f"SELECT {EARLIER}, sender_id, room_id, client_id FROM messages WHERE ",
}
FRIEND_PAIR = ("user_id", "friend_id")
MEMBER_PAIR = ("room_id", "user_id")
POSTERS = ("owner", "moderator")  # who posts in a room in announcement mode
EARLIER_KEY = ("sender_id", "room_id", "client_id")
# A reply's original: a message (not an edit or delete event, not deleted) by id; the
# handler refuses it unless it is in the same conversation.
QUOTED = (
    "SELECT m.id, m.room_id, m.seq, m.sender_id, m.text, u.username FROM messages m"
    " JOIN users u ON u.id = m.sender_id"
    " WHERE m.kind = 'message' AND m.deleted_at IS NULL AND m.id IN "
)
WHEN = "WHEN {m} THEN {m}"
SEQ_SPAN = "(m.room_id = {m} AND m.seq BETWEEN {m} AND {m})"
STORED_MESSAGES = (
    "SELECT m.id, m.room_id, m.seq, u.username, a.hash AS avatar"
    " FROM messages m JOIN users u ON u.id = m.sender_id"
    " LEFT JOIN avatars a ON a.user_id = m.sender_id WHERE "
)


class Marks:
    """Parameter marks in the driver's style (%s for PyMySQL, ? for sqlite3)."""

    def __init__(self, mark: str, row_in: bool) -> None:
        self.mark = mark
        self.row_in = row_in

    def marks(self, count: int) -> str:
        return "(" + ", ".join([self.mark] * count) + ")"

    def repeat(self, template: str, count: int, separator: str = " ") -> str:
        return separator.join([template.format(m=self.mark)] * count)

    def tuple_in(self, columns: tuple[str, ...], count: int) -> str:
        """A condition matching `count` exact tuples of `columns`, each an index
        lookup: a row-constructor IN on MySQL/MariaDB; on SQLite (whose row IN takes
        only a subquery, which it would scan) the equivalent ORs, each an index search."""
        if self.row_in:
            row = "(" + ", ".join(["{m}"] * len(columns)) + ")"
            return f"({', '.join(columns)}) IN ({self.repeat(row, count, ', ')})"
        each = " AND ".join(f"{column} = {{m}}" for column in columns)
        return "(" + self.repeat(f"({each})", count, " OR ") + ")"
