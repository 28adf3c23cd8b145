"""How a process reacts to its configuration at start, as an operator sees it: a bad
value is one clear line and exit status 2; a misspelt CHAT_* name is a warning that
names the setting it probably meant; a missing key file is one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from chatroom import config_env
from chatroom.config import Settings
from chatroom.storage.db import make_engine, until_reachable


def start(module: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    clean.update({"CHAT_DB_URL": f"sqlite:///{tmp_path}/chat.db", **env})
    return subprocess.run(
        [sys.executable, "-m", module],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_bad_log_level_is_one_line_and_exit_2(tmp_path):
    result = start("services.bus", tmp_path, CHAT_LOG_LEVEL="verbose")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "bus: configuration error: CHAT_LOG_LEVEL must be one of TRACE, DEBUG, INFO, "
        "SUCCESS, WARNING, ERROR, CRITICAL, got 'verbose'"
    ]


def test_bad_number_is_one_line_and_exit_2(tmp_path):
    result = start("services.auth", tmp_path, CHAT_EDGE_PORT="twenty")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "CHAT_EDGE_PORT='twenty' is not a valid int" in result.stderr


def test_misspelt_name_is_warned_with_a_suggestion(tmp_path):
    # No keys in tmp_path: the process stops right after its start-up checks, with the
    # missing key named in one line.
    result = start("services.bus", tmp_path, CHAT_EDGE_PROT="2020", CHAT_BUS_KEYS_DIR=str(tmp_path))
    assert "CHAT_EDGE_PROT is not a ChatRoom setting and is ignored (did you mean " in (
        result.stderr
    )
    assert "CHAT_EDGE_PORT?)" in result.stderr
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bus cannot start: bus key" in result.stderr


def test_names_read_elsewhere_are_not_warned_about():
    env = {name: "x" for name in config_env.OTHER_NAMES}
    env["CHAT_DB_PASSWORD_FILE"] = "/run/secrets/db_password"
    env["CHAT_SOMETHING_ELSE"] = "1"
    assert config_env.unknown_names(env) == [
        "CHAT_SOMETHING_ELSE is not a ChatRoom setting and is ignored (see .env.example)"
    ]


def test_log_level_is_case_insensitive():
    assert config_env.load({"CHAT_LOG_LEVEL": "debug"}).log_level == "debug"


def test_version_is_the_distributions():
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "chatroom.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"chatroom {version('chatroom')}"


def test_a_refused_database_password_is_one_line_and_exit_2_at_once(tmp_path, mysql_url):
    """Seen in the Swarm test: a data volume left by an earlier run kept its first
    password, so every replica waited for a database that would never let it in and was
    replaced, minute after minute, saying only "not reachable yet". Now the first
    refusal ends the process and says what to check."""
    wrong = make_url(mysql_url).set(password="not-the-password")
    result = start(
        "services.auth",
        tmp_path,
        CHAT_DB_URL=wrong.render_as_string(hide_password=False),
        CHAT_BUS_KEYS_DIR=str(tmp_path / "keys"),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "refused user 'chat_test'" in result.stderr
    assert "data volume keeps the password of its first start" in result.stderr
    assert "not reachable yet" not in result.stderr  # no minute of retries first


def test_start_up_work_is_repeated_when_the_database_drops_the_connection(mysql_url):
    """A service's start-up writes (social's lobby, media's default avatar) meet a
    connection the database side closes: seen when a Galera cluster's only Synced node
    became a donor and the proxy closed every session. The work is done again on a new
    connection, not a crash that fails the deployment."""
    engine = make_engine(Settings(db_url=mysql_url))
    tries: list[int] = []

    def lobby_once() -> str:
        with engine.connect() as conn:
            tries.append(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
            if len(tries) == 1:  # the proxy closes it, as HAProxy's shutdown-sessions does
                with engine.connect() as other:
                    other.exec_driver_sql(f"KILL CONNECTION {tries[0]}")
            return str(conn.exec_driver_sql("SELECT 'lobby'").scalar_one())

    try:
        assert until_reachable(engine, lobby_once, timeout_s=30) == "lobby"
    finally:
        engine.dispose()
    assert len(tries) == 2 and tries[0] != tries[1]
