"""Fixtures: real databases (SQLite always, MariaDB/MySQL when CHAT_TEST_MYSQL_URL is
set), real stacks of service processes, and desktop client apps (`apps`)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess

# Before anything imports Qt: the client tests render offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import PrivateMariaDB, Stack  # noqa: E402

MYSQL_URL = os.environ.get("CHAT_TEST_MYSQL_URL", "")
ROOT = Path(__file__).resolve().parents[1]


def pytest_report_header(config: pytest.Config) -> str:
    return f"MySQL/MariaDB tests: {'on' if MYSQL_URL else 'off (set CHAT_TEST_MYSQL_URL)'}"


def _mysql_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"chat_test_{secrets.token_hex(4)}"
    server = create_engine(MYSQL_URL)
    with server.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    try:
        yield MYSQL_URL.rstrip("/") + f"/{name}?charset=utf8mb4"
    finally:
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def _mysql_for(request: pytest.FixtureRequest) -> Iterator[str]:
    if not MYSQL_URL:
        pytest.skip("CHAT_TEST_MYSQL_URL is not set")
    for url in _mysql_database():
        yield url
        # Stop this test's services before the database is dropped under them.
        for stack in getattr(request.node, "stacks", []):
            stack.stop()


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One fresh, empty database per test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/chat.db"
        return
    yield from _mysql_for(request)


@pytest.fixture
def mysql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """One fresh, empty MariaDB/MySQL database, for a test about that backend only
    (skipped when CHAT_TEST_MYSQL_URL is not set)."""
    yield from _mysql_for(request)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/chat.db"


@pytest.fixture
def make_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Factory: make_stack(db_url, edges=1, **settings) -> a started Stack."""
    stacks: list[Stack] = []
    request.node.stacks = stacks

    def make(db_url: str, edges: int = 1, **settings: object) -> Stack:
        workdir = tmp_path / f"stack{len(stacks)}"
        workdir.mkdir()
        stack = Stack(workdir, db_url, **settings)
        stacks.append(stack)
        return stack.start(edges=edges)

    yield make
    for stack in stacks:
        stack.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for stack in stacks:
            sys.stderr.write(stack.logs()[-20000:])


@pytest.fixture
def stack(make_stack, db_url: str) -> Stack:
    return make_stack(db_url)


@pytest.fixture
def apps(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    """The desktop client (tests/test_client_*.py): new(name) -> App, each its own
    "computer" (settings, avatar cache, kept session under tmp_path, never the
    developer's own keyring); every window is closed at the end."""
    from clicks import new_app  # needs PySide6, which server-only runs lack

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    made = []

    def new(name: str):
        app = new_app(tmp_path, name)
        qtbot.addWidget(app.login_window)
        made.append(app)
        return app

    yield new
    for app in made:
        if app.main_window is not None:
            app.main_window.notifier.close()
            app.main_window.close()
    # And every dialog or menu a test left open: the next test's clicks.dialog() finds
    # windows by type and name, and would pick a stale one talking to a stopped server
    # (seen: test_client_mentions left Account settings open; test_client_settings then
    # clicked in it and waited for replies that never came).
    from PySide6.QtWidgets import QApplication

    for widget in QApplication.topLevelWidgets():
        if widget.isVisible():
            widget.close()


def _admin(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatroom.cli", "admin", *args],
        env=stack.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _admin_json(stack: Stack, *args: str) -> dict:
    proc = _admin(stack, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def admin() -> Callable[..., subprocess.CompletedProcess]:
    """admin(stack, *args, stdin=None): `chatroom admin` run as operators run it, a
    process talking to the live stack over the bus."""
    return _admin


@pytest.fixture
def admin_json() -> Callable[..., dict]:
    """admin_json(stack, *args): `chatroom admin --json ...`, which must succeed, parsed."""
    return _admin_json


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# ----------------------------------------------------------------------------- tracked files
# A test run must not rewrite a file git tracks (results go to var/, which git ignores).
# The tracked files that differ from HEAD are noted when the run starts, with a digest of
# each; when it ends, any tracked file that differs and was not in that list, or whose
# digest moved, fails the run. A developer's own uncommitted edits are left out that way.


_TRACKED = pytest.StashKey[dict[str, str] | None]()


def tracked_changes(root: Path = ROOT) -> dict[str, str] | None:
    """Tracked files that differ from HEAD -> a digest of their content (None: no git)."""
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    changed = {}
    entries = iter(proc.stdout.decode(errors="replace").split("\0"))
    for entry in entries:
        if not entry:
            continue
        status, name = entry[:2], entry[3:]  # "XY path"
        if "R" in status or "C" in status:
            next(entries, None)  # a rename's or copy's source path follows
        path = root / name
        data = path.read_bytes() if path.is_file() else b"(gone)"
        changed[name] = hashlib.sha256(data).hexdigest()
    return changed


@pytest.fixture
def tracked_files() -> Callable[[], dict[str, str] | None]:
    """A function listing the tracked files that differ from HEAD, with a digest of each:
    for a test that checks what a command leaves behind."""
    return tracked_changes


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TRACKED] = tracked_changes()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_TRACKED, None)
    after = tracked_changes()
    if before is None or after is None:
        return
    rewritten = sorted(
        {path for path, digest in after.items() if before.get(path) != digest}
        | (set(before) - set(after))  # an edit undone is a change too
    )
    if rewritten:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            "the test run changed files git tracks (tests and benchmarks write to var/; "
            "if you edited these during the run, run again): " + ", ".join(rewritten)
        )
        if reporter is not None:
            reporter.write("\n")
            reporter.write_sep("!", message, red=True)
        else:
            sys.stderr.write(message + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def private_db():
    """(db, url): a MariaDB of this test's own (tests/harness.py PrivateMariaDB), which
    the test may freeze, restart or stop without disturbing any other test."""
    from sqlalchemy import create_engine, text

    db = PrivateMariaDB()
    url = db.start()
    name = "chat_faults"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    engine.dispose()
    yield db, url.rstrip("/") + f"/{name}?charset=utf8mb4"
    db.remove()
