"""auth's rate buckets in the database (`rate_buckets`): the failed-login and register
limits that every auth replica shares (services/auth/throttle.py decides which buckets
a login spends from; this is how they are read and written)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, case, delete, literal, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatroom.ratelimit import Rate
from chatroom.storage.schema import rate_buckets


class Counted(Protocol):
    @property
    def key(self) -> str: ...  # the rate_buckets row, at most 200 characters

    @property
    def rate(self) -> Rate: ...


C = TypeVar("C", bound=Counted)  # a caller's bucket type, given back as it came


def _refilled(rate: Rate, now: int):  # noqa: ANN202 - an SQL expression
    """The row's tokens refilled up to `now`, capped at the burst, as SQL."""
    elapsed = now - rate_buckets.c.updated_at
    tokens = rate_buckets.c.tokens + case((elapsed > 0, elapsed), else_=0) * (rate.per_s / 1000)
    return case((tokens > rate.limit, literal(float(rate.limit))), else_=tokens)


class RateBuckets:
    """Token buckets as rows (table rate_buckets), shared by every auth replica; the
    arithmetic is chatroom.ratelimit's, done inside one UPDATE so taking is atomic."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take_all(self, buckets: Sequence[C], now: int) -> tuple[C, float] | None:
        """Take one token from every bucket, or from none. None if taken, else the
        refusing bucket and the tokens it has."""
        buckets = sorted(buckets, key=lambda b: b.key)  # one lock order: no deadlocks
        refused = self._refused_without_locking(buckets, now)
        if refused is not None:
            return refused
        for _attempt in range(2):
            with self.engine.connect() as conn, conn.begin() as transaction:
                for bucket in buckets:
                    if self._take_one(conn, bucket, now):
                        continue
                    tokens = conn.execute(
                        select(_refilled(bucket.rate, now)).where(
                            rate_buckets.c.bucket == bucket.key
                        )
                    ).scalar_one_or_none()
                    transaction.rollback()  # nothing taken; a refusal writes nothing
                    if tokens is not None:
                        return bucket, tokens
                    break  # a bucket never used yet (or forgotten): create them, try again
                else:
                    return None
            self._create_missing(buckets, now)
        raise RuntimeError("rate buckets vanished while being created")

    def _refused_without_locking(self, buckets: Sequence[C], now: int) -> tuple[C, float] | None:
        # A flood is refused by this one read, without taking a lock or writing: an empty
        # bucket only fills with time, so the refusal stands even if the read is a little
        # old. A bucket that looks full is then taken from under the lock.
        with self.engine.connect() as conn:
            for bucket in buckets:
                tokens = conn.execute(
                    select(_refilled(bucket.rate, now)).where(rate_buckets.c.bucket == bucket.key)
                ).scalar_one_or_none()
                if tokens is not None and tokens < 1:
                    return bucket, tokens
        return None

    @staticmethod
    def _take_one(conn: Any, bucket: Counted, now: int) -> bool:
        # Checks and spends in one statement, under the row's write lock: two replicas
        # cannot both spend the last token. (MySQL assigns SET clauses in order: tokens
        # is computed from the old updated_at.)
        refilled = _refilled(bucket.rate, now)
        taken = conn.execute(
            update(rate_buckets)
            .where(rate_buckets.c.bucket == bucket.key, refilled >= 1)
            .values(tokens=refilled - 1, updated_at=now)
        )
        return taken.rowcount > 0

    def _create_missing(self, buckets: Sequence[Counted], now: int) -> None:
        # A transaction of its own: in MySQL an INSERT that meets an existing row takes a
        # shared lock on it, which the UPDATE would then have to upgrade; two requests
        # doing that at once deadlock.
        rows = [
            {"bucket": b.key, "tokens": float(b.rate.limit), "updated_at": now} for b in buckets
        ]
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(sqlite_insert(rate_buckets).on_conflict_do_nothing(), rows)
            else:
                conn.execute(mysql_insert(rate_buckets).prefix_with("IGNORE"), rows)

    def give_back(self, buckets: Sequence[Counted]) -> None:
        """Return one token to each bucket (up to its burst)."""
        with self.engine.begin() as conn:
            for bucket in sorted(buckets, key=lambda b: b.key):
                refunded = rate_buckets.c.tokens + 1
                conn.execute(
                    update(rate_buckets)
                    .where(rate_buckets.c.bucket == bucket.key)
                    .values(
                        tokens=case(
                            (refunded > bucket.rate.limit, bucket.rate.limit), else_=refunded
                        )
                    )
                )

    def states(self, keys: list[str]) -> list[dict[str, Any]]:
        """These buckets as stored (kind, attempts_left, updated_at); the hashed part of
        a key is left out. Buckets never used (or full and forgotten) have no row."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rate_buckets).where(rate_buckets.c.bucket.in_(sorted(keys)))
            ).all()
        return [
            {
                "kind": r.bucket.split(":")[0],
                "attempts_left": r.tokens,  # as of updated_at; it refills with time
                "updated_at": r.updated_at,
            }
            for r in rows
        ]

    def forget_idle(self, before_ms: int) -> None:
        """Delete the buckets untouched since then (full again: the same as no row)."""
        with self.engine.begin() as conn:
            conn.execute(delete(rate_buckets).where(rate_buckets.c.updated_at < before_ms))
