"""Presence decided from a user's live sessions while another change to them commits.

A user is online while they have a live session. When an edge goes away (a rolling
restart drains it), social drops its sessions and tells the friends of users left with
none (`drop_edge`); the same users are logging in again on another edge at that moment
(`open_sessions`). Both take the user's profile lock, so one waits for the other; the
one that waited must then count the sessions as they are, not as its transaction saw
them before the wait. Under MySQL's REPEATABLE READ a plain SELECT answers from the
transaction's snapshot, taken at its first read: CI saw a friend shown offline for good
after a rolling restart (tests/test_host_faults.py), the user connected all along.

The same two changes on two Galera writers are in tests/test_galera.py.
"""

from __future__ import annotations

import threading

from sqlalchemy import create_engine, func, select, text

from chatroom.storage.migrate import upgrade
from chatroom.storage.schema import live_sessions
from services.social.store import SocialStore

from inproc import add_users
from wire import wait_until

WAIT_S = 10


def _waiting_for_a_lock(engine) -> int:
    """Statements taking a row lock that are running now (the login that holds the lock
    is idle meanwhile). The processlist, as INNODB_TRX needs the PROCESS privilege."""
    with engine.connect() as conn:
        rows = conn.execute(text("SHOW FULL PROCESSLIST")).all()
    return sum(1 for row in rows if row.Command == "Query" and "FOR UPDATE" in (row.Info or ""))


def test_an_edge_dropped_while_its_user_logs_in_elsewhere_leaves_them_online(mysql_url):
    engine = create_engine(mysql_url)
    upgrade(engine)
    (ann,) = add_users(engine, "ann")
    store = SocialStore(engine)
    store.ensure_profile(ann.user_id)
    with store.transaction() as tx:
        tx.lock_profile(ann.user_id)
        assert tx.open_session(ann.user_id, "old-edge", "old-conn") is not None

    # ann's login on the new edge holds her profile lock ...
    locked, go_on = threading.Event(), threading.Event()
    came_online: list[int | None] = []

    def log_in_elsewhere() -> None:
        with store.transaction() as tx:
            tx.lock_profiles({ann.user_id})
            locked.set()
            go_on.wait(WAIT_S)
            came_online.append(tx.open_session(ann.user_id, "new-edge", "new-conn"))

    login = threading.Thread(target=log_in_elsewhere)
    login.start()
    assert locked.wait(WAIT_S)
    # ... while the old edge is dropped: its transaction reads, then waits for the lock.
    went_offline: list[list[int]] = []

    def drop_old_edge() -> None:
        with store.transaction() as tx:
            went_offline.append(tx.drop_edge("old-edge"))

    drop = threading.Thread(target=drop_old_edge)
    drop.start()
    try:
        wait_until(lambda: _waiting_for_a_lock(engine) == 1, WAIT_S, "the drop waits for her lock")
    finally:
        go_on.set()
        login.join(WAIT_S)
        drop.join(WAIT_S)
    assert not login.is_alive() and not drop.is_alive()

    assert came_online == [None]  # her old session was still there
    with engine.connect() as conn:
        sessions = conn.execute(
            select(func.count())
            .select_from(live_sessions)
            .where(live_sessions.c.user_id == ann.user_id)
        ).scalar_one()
    assert sessions == 1
    assert went_offline == [[]], "ann was told offline while her new session was live"
    engine.dispose()
