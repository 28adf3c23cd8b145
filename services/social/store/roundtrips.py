"""How the message writer's statements reach the database: each on its own in a
SQLAlchemy transaction (SQLite), or a step's statements together in one multi-statement
query on a connection of the writer's own (PyMySQL). batch_sql.py says why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from loguru import logger
from pymysql.constants import CLIENT
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError

from services.social.store.batch_sql import Statement, Trips

T = TypeVar("T")

# The kept connection is replaced (with a pinged one from the pool) after this long
# unused, so a database restart or an idle timeout meets a fresh connection.
KEEP_CONNECTION_S = 30.0


class OneByOne:
    """Each statement its own execute, in a SQLAlchemy transaction (SQLite)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.mark = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
        self.row_in = conn.dialect.name != "sqlite"

    def run(self, *statements: Statement) -> list[list[tuple]]:
        results = []
        for sql, params in statements:
            result = self.conn.exec_driver_sql(sql, params)
            results.append([tuple(row) for row in result] if result.returns_rows else [])
        return results

    def run_and_commit(self, *statements: Statement) -> list[list[tuple]]:
        return self.run(*statements)  # the commit is the end of WriterConnection's block


class Pipelined:
    """All statements of a step in one multi-statement query (PyMySQL)."""

    mark = "%s"
    row_in = True

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def run(self, *statements: Statement) -> list[list[tuple]]:
        if not statements:
            return []
        self.cursor.execute(
            ";\n".join(sql for sql, _ in statements),
            tuple(value for _, params in statements for value in params),
        )
        results = []
        while True:  # one result per statement, in order; an error raises here
            results.append(list(self.cursor.fetchall()) if self.cursor.description else [])
            if not self.cursor.nextset():
                break
        return results

    def run_and_commit(self, *statements: Statement) -> list[list[tuple]]:
        return self.run(*statements, ("COMMIT", ()))[:-1]


class WriterConnection:
    """The writer's one database connection, kept between batches. `pipelined=False`
    keeps an ordinary SQLAlchemy connection on any database (the read markers' writer:
    its statements are SQLAlchemy's, one by one); what it saves is the pool's checkout
    and ping per batch."""

    def __init__(self, engine: Engine, pipelined: bool = True) -> None:
        self.pipelined = pipelined and engine.dialect.driver == "pymysql"
        if self.pipelined:
            # Its own engine: multi-statement queries only on this connection, whose SQL
            # is this module's constants; every other connection keeps them off.
            engine = create_engine(
                engine.url,
                pool_size=1,
                max_overflow=0,
                pool_pre_ping=True,
                connect_args={
                    "charset": "utf8mb4",
                    "connect_timeout": 5,
                    "client_flag": CLIENT.MULTI_STATEMENTS,
                },
            )
        self.engine = engine
        self._conn: Any = None
        self._used = 0.0

    def connect(self) -> None:
        self._kept()

    def once_more_if_disconnected(self, writer: str, commit: Callable[[], T]) -> T:
        """commit(), and once more on a fresh connection if the kept one had died (a
        database restart): nothing was committed then, so the batch can go again."""
        try:
            return commit()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.warning("{} lost its database connection; reconnecting", writer)
            return commit()

    def _kept(self) -> Any:
        now = time.monotonic()
        if self._conn is not None and now - self._used > KEEP_CONNECTION_S:
            self._drop()
        if self._conn is None:
            self._conn = self._connect()
        self._used = now
        return self._conn

    def _connect(self) -> Any:
        if not self.pipelined:
            return self.engine.connect()  # its errors come out as SQLAlchemy's already
        dialect = self.engine.dialect
        try:
            return self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:
            # raw_connection lets the driver's own error through: as SQLAlchemy's, it is
            # service_unavailable to the client (the runtime's rule), not a crash. Seen
            # when a Galera writer died and the proxy still sent new connections to it.
            raise DBAPIError.instance(
                "message writer connect",
                None,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=True,
                dialect=dialect,
            ) from exc

    def _drop(self, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    conn.invalidate()
                conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Trips]:
        """A transaction on the kept connection; rolled back if the body raises. Driver
        errors come out as SQLAlchemy's (IntegrityError, OperationalError, ...), with
        `connection_invalidated` set when the connection was lost."""
        conn = self._kept()
        if not self.pipelined:
            try:
                with conn.begin():
                    yield OneByOne(conn)
            except DBAPIError as exc:
                if exc.connection_invalidated or conn.invalidated:
                    self._drop()
                raise
            return
        cursor = conn.cursor()
        try:
            yield Pipelined(cursor)
        except BaseException as exc:
            dialect = self.engine.dialect
            dbapi_error = isinstance(exc, dialect.loaded_dbapi.Error)
            lost = dbapi_error and dialect.is_disconnect(
                cast(Any, exc),
                conn.dbapi_connection,
                cursor,  # a DB-API error: checked above
            )
            try:
                if not lost:
                    conn.rollback()
            except Exception:  # noqa: BLE001 - a connection that cannot roll back is gone
                lost = True
            if lost:
                self._drop(invalidate=True)
            if dbapi_error:
                raise DBAPIError.instance(
                    "message writer batch",
                    None,
                    exc,
                    dialect.loaded_dbapi.Error,
                    connection_invalidated=lost,
                    dialect=dialect,
                ) from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
