"""Schema migrations (chatroom/storage/migrate.py): the first release's database upgrades
in place with its data, services refuse a schema they cannot run on, and the head
revision is exactly the schema the code declares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import Engine, create_engine, text

from chatroom.storage.migrate import head_revision, upgrade
from chatroom.storage.schema import metadata

from harness import Stack
from wire import WireClient

RELEASE = Path(__file__).parent / "data" / "release-d2e3739"
PASSWORD = "correct horse"


def engine_for(url: str) -> Engine:
    return create_engine(url)


def run_migrate(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env["CHAT_DB_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "chatroom.cli", "migrate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def load_release_schema(engine: Engine) -> None:
    """The DDL the first release ran: its db/init.sql on MySQL, create_all on SQLite."""
    name = "sqlite.sql" if engine.dialect.name == "sqlite" else "mysql.sql"
    script = (RELEASE / name).read_text()
    with engine.begin() as conn:
        for statement in script.split(";\n"):
            lines = [line for line in statement.splitlines() if not line.startswith("--")]
            if "".join(lines).strip():
                conn.exec_driver_sql("\n".join(lines))


def test_migrations_build_the_schema_the_code_declares(db_url: str):
    engine = engine_for(db_url)
    try:
        assert upgrade(engine) == (None, head_revision())
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
        assert diff == [], "schema.py changed without a migration: " + repr(diff)
    finally:
        engine.dispose()


def test_release_database_upgrades_in_place_with_data_kept(db_url: str, make_stack):
    engine = engine_for(db_url)
    load_release_schema(engine)
    hashed = PasswordHasher().hash(PASSWORD)
    with engine.begin() as conn:
        # Keys as the first release made them: NFC case-folded ('Ｂｏｂ' -> 'ｂｏｂ').
        conn.execute(
            text(
                "INSERT INTO users (id, username, username_key, password_hash, disabled,"
                " created_at) VALUES (1, 'alice', 'alice', :h, 0, 1),"
                " (2, 'Ｂｏｂ', 'ｂｏｂ', :h, 0, 2)"
            ),
            {"h": hashed},
        )
        conn.execute(
            text(
                "INSERT INTO rooms (id, name, name_key, kind, created_by, created_at, last_seq)"
                " VALUES (1, 'lobby', 'lobby', 'public', NULL, 1, 1),"
                " (2, 'Ｔｅａ', 'ｔｅａ', 'group', 1, 1, 0)"
            )
        )
        conn.execute(text("INSERT INTO room_members VALUES (2, 1, 1)"))
        conn.execute(
            text(
                "INSERT INTO messages (room_id, seq, sender_id, text, created_at, client_id)"
                " VALUES (1, 1, 1, 'from the first release', 1, 'Ab')"
            )
        )
        conn.execute(text("INSERT INTO friendships VALUES (1, 2, 1), (2, 1, 1)"))
    engine.dispose()

    due = run_migrate(db_url, "--check")
    assert due.returncode == 1, due.stdout + due.stderr
    assert "database schema: 0001" in due.stdout
    done = run_migrate(db_url)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from 0001 to {head_revision()}" in done.stderr
    assert run_migrate(db_url, "--check").returncode == 0

    # Services that only check (as in compose) start on it, and the data reads back.
    stack = make_stack(db_url, db_migrate="check")
    with WireClient(stack.port) as alice, WireClient(stack.port) as bob:
        alice.login("alice", PASSWORD)
        history = alice.call("room.history", room="lobby")
        assert [m["text"] for m in history["messages"]] == ["from the first release"]
        friends = alice.call("friend.list")
        assert "Ｂｏｂ" in repr(friends)
        # The key is NFKC now: 'bob' finds 'Ｂｏｂ', 'tea' finds 'Ｔｅａ'.
        snapshot = bob.login("bob", PASSWORD)
        # Read markers came with 0005: what was there before the upgrade is read.
        lobby = next(r for r in snapshot["rooms"] if r["name"] == "lobby")
        assert (lobby["read_seq"], lobby["unread"]) == (1, 0), lobby
        bob.call("room.join", room="tea")
        assert "Ｔｅａ" in repr(bob.call("room.list"))
        # client_id is byte-exact and per conversation: 'ab' is not the release's 'Ab'.
        sent = alice.call("room.send", room="lobby", text="after the upgrade", client_id="ab")
        assert sent["message"]["seq"] == 2
        again = alice.call("room.send", room="lobby", text="after the upgrade", client_id="ab")
        assert again["message"]["seq"] == 2


def test_service_refuses_a_schema_newer_than_its_code(sqlite_url: str, make_stack, tmp_path):
    engine = engine_for(sqlite_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    engine.dispose()
    stack = Stack(tmp_path, sqlite_url)
    proc = stack.start_service("auth")
    assert proc.wait(timeout=60) == 2
    log = stack.logs("auth")
    assert "revision f00dcafe, which this release does not know" in log, log
    assert run_migrate(sqlite_url).returncode == 2


def test_service_that_only_checks_names_the_command(sqlite_url: str, tmp_path):
    stack = Stack(tmp_path, sqlite_url, db_migrate="check")
    proc = stack.start_service("social")
    assert proc.wait(timeout=60) == 2
    log = stack.logs("social")
    assert "run `chatroom migrate`" in log, log


def test_processes_starting_together_upgrade_once(db_url: str):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "chatroom.cli", "migrate"],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("CHAT_")},
                "CHAT_DB_URL": db_url,
            },
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    logs = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        logs.append(err)
    assert sum("upgraded from empty" in log for log in logs) == 1, logs
    assert sum("nothing to do" in log for log in logs) == 3, logs


def test_embedded_default_upgrades_by_itself(sqlite_url: str, make_stack):
    # The default (auto): a fresh var/chatroom.db needs no separate step.
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        c.register_and_login("fresh-install")
    engine = engine_for(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            head_revision()
        )
    engine.dispose()
