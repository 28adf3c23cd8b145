"""Database engines for SQLite (embedded default) and MySQL/MariaDB (via PyMySQL)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import Connection, CursorResult, Engine, Table, create_engine, event
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from chatroom.config import Settings
from chatroom.files import private_folder

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
    cur = dbapi_conn.cursor()
    # WAL lets readers run while one writer commits; several processes share the file.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock at BEGIN: two deferred transactions that both read and then
    # write would otherwise deadlock (SQLITE_BUSY) instead of queueing.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _private_sqlite_file(path: str) -> None:
    """The database holds password hashes and every message: only its owner may read
    it. A folder made here is 0700; the file is created (or narrowed to) 0600 before
    SQLite opens it, and SQLite gives its -wal and -shm files the file's permissions."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        private_folder(folder)
    elif os.stat(folder).st_mode & 0o007:
        logger.warning("the database folder {} is open to all users; chmod o-rwx it", folder)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_engine(settings: Settings) -> Engine:
    url = make_url(settings.with_db_password())
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _private_sqlite_file(url.database)
        engine = create_engine(
            url,
            connect_args={"timeout": 15, "check_same_thread": False},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling is off so BEGIN is ours to issue.
        event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,  # a restarted MySQL leaves dead pooled connections behind
        pool_recycle=3600,
        connect_args={"charset": "utf8mb4", "connect_timeout": 5},
    )


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT of one row gave it."""
    key = result.inserted_primary_key
    assert key is not None, "not an INSERT of one row"
    return int(key[0])


def upsert(
    conn: Connection,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    update: tuple[str, ...],
) -> None:
    """INSERT, or UPDATE the `update` columns when the primary/unique key exists; one
    row, or a list of rows in one statement. MySQL's form uses VALUES(col), which
    MariaDB 10.11 and MySQL 8.4 both accept."""
    rows = [values] if isinstance(values, dict) else values
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        keys = [c.name for c in table.primary_key.columns]
        lite = sqlite_insert(table)
        conn.execute(
            lite.on_conflict_do_update(
                index_elements=keys, set_={c: lite.excluded[c] for c in update}
            ),
            rows,
        )
    else:
        my = mysql_insert(table)
        conn.execute(my.on_duplicate_key_update({c: my.inserted[c] for c in update}), rows)


def database_ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


# MySQL's "Access denied for user": waiting does not help.
ACCESS_DENIED = 1045


def wait_for_database(engine: Engine, timeout_s: float = 60.0) -> None:
    """Until the database answers (it may still be starting), at most `timeout_s`; a
    refused password ends the process at once (status 2), saying what to check."""

    def ping() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    until_reachable(engine, ping, timeout_s)


def until_reachable(engine: Engine, work: Callable[[], T], timeout_s: float = 60.0) -> T:
    """work(), tried again while the database cannot be reached or drops the connection
    (starting, failing over: a Galera donor is taken out of the proxy), at most
    `timeout_s`; work must be safe to repeat. A refused password ends the process at
    once (status 2), saying what to check."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return work()
        except OperationalError as exc:
            if getattr(exc.orig, "args", (None,))[0] == ACCESS_DENIED:
                logger.error(
                    "the database refused user {!r}'s password. Check that the password "
                    "this service is given (CHAT_DB_URL, or the db_password secret) is the "
                    "one the database was created with: a database's data volume keeps the "
                    "password of its first start, whatever .env or secrets/ say later",
                    engine.url.username,
                )
                raise SystemExit(2) from None
            if time.monotonic() > deadline:
                raise
            logger.warning("database not reachable yet ({}); retrying", exc.orig)
            time.sleep(1.0)  # the retry interval; the loop ends at the deadline
