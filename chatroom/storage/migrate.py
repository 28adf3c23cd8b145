"""Schema versions: upgrade a database to the code's schema, or refuse one it cannot use.

The revisions live in chatroom/storage/migrations/versions (Alembic); the database
records its revision in the alembic_version table. A service at start calls
ensure_schema(): at the head revision it goes on; older, it upgrades (CHAT_DB_MIGRATE
=auto) or refuses with the command to run (=check, what compose uses: its one-shot
`migrate` service runs `chatroom migrate` before any service starts); at a revision the
code does not know (a newer release migrated it) it always refuses.

Upgrades hold a lock, so services starting together upgrade once: MySQL's GET_LOCK on
the connection that migrates; on SQLite the migration's own transaction (BEGIN
IMMEDIATE, chatroom/storage/db.py) is the lock. Alembic reads the current revision
inside the lock, so a process that waited finds nothing left to do.

A database made before migrations existed (tables, no alembic_version) is taken to be
at 0001, the first release; 0002 checks before each step, so one made by later code
upgrades as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import OperationalError

from chatroom.config import Settings
from chatroom.storage.db import make_engine, wait_for_database

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_RELEASE = "0001"
LOCK_NAME = "chatroom_schema_migration"
LOCK_WAIT_S = 300  # a big upgrade (a messages table copied) may take minutes


class SchemaError(RuntimeError):
    """The database's schema is not one this code can run on; the message says why and
    what to do."""


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "chatroom/storage/migrations/versions has no revision"
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The database's revision; FIRST_RELEASE for one made before migrations; None when
    it has no tables yet."""
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None and inspect(conn).has_table("users"):
        return FIRST_RELEASE
    return revision


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            yield conn
            return
        got = conn.exec_driver_sql(f"SELECT GET_LOCK('{LOCK_NAME}', {LOCK_WAIT_S})").scalar()
        if got != 1:
            raise SchemaError(
                f"another process has been migrating the schema for {LOCK_WAIT_S} s: "
                "wait for it (its log says when it is done) and start again"
            )
        conn.commit()
        try:
            yield conn
        finally:
            conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{LOCK_NAME}')")
            conn.commit()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the head revision; returns (from, to)."""
    head = head_revision()
    with _migration_lock(engine) as conn:
        before = current_revision(conn)
        if before == head:
            return before, head
        _refuse_unknown(before)
        cfg = _config(conn)
        if (
            before == FIRST_RELEASE
            and MigrationContext.configure(conn).get_current_revision() is None
        ):
            logger.info("database has tables but no schema version: taking it as {}", before)
            command.stamp(cfg, FIRST_RELEASE)
        logger.info("upgrading the database schema from {} to {}", before or "empty", head)
        command.upgrade(cfg, "head")
        conn.commit()
    return before, head


def ensure_schema(engine: Engine, mode: str) -> None:
    """Make sure the schema is the code's before a service uses it (see the module doc)."""
    head = head_revision()
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
    except OperationalError as exc:
        # MariaDB refuses to read a table's definition while another process's DDL is
        # changing it (error 1684): that process is upgrading. Wait for it under the
        # lock, then read the revision it left (seen when services start together).
        logger.info("another process is changing the schema ({}); waiting for it", exc.orig)
        with _migration_lock(engine) as conn:
            current = current_revision(conn)
    if current == head:
        return
    _refuse_unknown(current)
    if mode == "check":
        raise SchemaError(
            f"the database schema is at {current or 'nothing (empty database)'} and this "
            f"release needs {head}: run `chatroom migrate` (compose: `docker compose run "
            "--rm migrate`), or set CHAT_DB_MIGRATE=auto"
        )
    upgrade(engine)


def _refuse_unknown(revision: str | None) -> None:
    if revision is not None and revision not in known_revisions():
        raise SchemaError(
            f"the database schema is at revision {revision}, which this release does not "
            f"know (it knows up to {head_revision()}): a newer release has upgraded it. "
            "Run that release, or restore the backup taken before its upgrade."
        )


def migrate_database(settings: Settings, check_only: bool = False) -> int:
    """`chatroom migrate`: upgrade (or with check_only, report); an exit status."""
    engine = make_engine(settings)
    try:
        wait_for_database(engine)
        if check_only:
            with engine.connect() as conn:
                current = current_revision(conn)
            head = head_revision()
            print(f"database schema: {current or 'empty'}; this release: {head}")
            return 0 if current == head else 1
        before, after = upgrade(engine)
    except SchemaError as exc:
        logger.error("cannot migrate: {}", exc)
        return 2
    finally:
        engine.dispose()
    if before == after:
        logger.info("database schema is at {}: nothing to do", after)
    else:
        logger.info("database schema upgraded from {} to {}", before or "empty", after)
    return 0
