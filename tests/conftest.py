"""Fixtures: real databases (SQLite always, MariaDB/MySQL when CHAT_TEST_MYSQL_URL is
set) and real stacks of service processes."""

from __future__ import annotations

import os
import secrets

# Before anything imports Qt: the client tests render offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Stack  # noqa: E402

MYSQL_URL = os.environ.get("CHAT_TEST_MYSQL_URL", "")


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


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One fresh, empty database per test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/chat.db"
        return
    if not MYSQL_URL:
        pytest.skip("CHAT_TEST_MYSQL_URL is not set")
    for url in _mysql_database():
        yield url
        # Stop this test's services before the database is dropped under them.
        for stack in getattr(request.node, "stacks", []):
            stack.stop()


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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
