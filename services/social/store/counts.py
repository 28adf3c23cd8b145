"""Capped counts per (user, conversation), many in one statement: unread messages
(reads.py) and unread mentions (mentions.py) are both "the rows after the marker,
at most UNREAD_CAP + 1 of them", a range of an index each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    func,
    literal,
    select,
    union_all,
)

from chatroom.protocol import UNREAD_CAP

# Count subqueries in one statement (SQLite allows 500 terms in a compound SELECT).
COUNT_TERMS_PER_STATEMENT = 100


def capped_count_term(
    user_id: int, room_id: int, *where: ColumnElement[bool]
) -> Select[int, int, int]:
    """SELECT user, room, count of at most UNREAD_CAP + 1 rows matching `where`."""
    rows = select(literal(1).label("one")).where(*where).limit(UNREAD_CAP + 1).subquery()
    return select(
        literal(user_id).label("user_id"),
        literal(room_id).label("room_id"),
        func.count().label("n"),
    ).select_from(rows)


def run_counts(conn: Connection, terms: list[Select[int, int, int]]) -> Iterator[Any]:
    """The rows (user_id, room_id, n) of the terms, COUNT_TERMS_PER_STATEMENT a statement."""
    for start in range(0, len(terms), COUNT_TERMS_PER_STATEMENT):
        chunk = terms[start : start + COUNT_TERMS_PER_STATEMENT]
        statement: Executable = chunk[0] if len(chunk) == 1 else union_all(*chunk)
        yield from conn.execute(statement)
