"""Capped counts per (user, conversation), many in one statement: unread messages
(reads.py) and unread mentions (mentions.py) are both "the rows after the marker,
at most UNREAD_CAP + 1 of them", a range of an index each.

Plain SQL with the values as driver parameters (batch_sql.py's way), not SQLAlchemy
expressions: each term's values were literals, so every statement was new to the
compiler, and building and compiling the terms of a batch of read marks was three
quarters of social's CPU for the batch (docs/benchmarks.md, "Session 15").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy import Connection

from chatroom.protocol import UNREAD_CAP

# Count subqueries in one statement (SQLite allows 500 terms in a compound SELECT, and
# older SQLite 999 parameters: 100 terms of up to 6 parameters each).
COUNT_TERMS_PER_STATEMENT = 100


class CountTerm(NamedTuple):
    """Count the rows of `table` matching `where` for (user, room), at most UNREAD_CAP
    + 1. `table` and `where` are this package's constant SQL; `where` marks each value
    as `{m}`, given in `params`."""

    user_id: int
    room_id: int
    table: str
    where: str
    params: tuple[Any, ...]


def run_counts(conn: Connection, terms: list[CountTerm]) -> Iterator[tuple[int, int, int]]:
    """(user id, room id, n) for each term, COUNT_TERMS_PER_STATEMENT a statement."""
    m = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(terms), COUNT_TERMS_PER_STATEMENT):
        chunk = terms[start : start + COUNT_TERMS_PER_STATEMENT]
        sql = " UNION ALL ".join(
            f"SELECT {m} AS user_id, {m} AS room_id, COUNT(*) AS n FROM"
            f" (SELECT 1 AS one FROM {t.table} WHERE {t.where.format(m=m)}"
            f" LIMIT {UNREAD_CAP + 1}) AS capped"
            for t in chunk
        )
        params = tuple(value for t in chunk for value in (t.user_id, t.room_id, *t.params))
        for user_id, room_id, n in conn.exec_driver_sql(sql, params):
            yield int(user_id), int(room_id), int(n)
