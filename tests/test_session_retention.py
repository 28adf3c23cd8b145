"""Sessions (token hash, login address) are deleted once they have been over for the
retention period; live ones, and recently ended ones, stay."""

from __future__ import annotations

from sqlalchemy import insert, select

from chatroom.config_env import load
from chatroom.storage.db import make_engine
from chatroom.storage.migrate import upgrade
from chatroom.storage.schema import sessions, users
from services.auth.__main__ import build
from services.auth.retention import DAY_MS, forget_old_sessions
from services.auth.store import AuthStore

NOW = 1_800_000_000_000


def test_old_sessions_are_forgotten_and_current_ones_kept(sqlite_url: str):
    engine = make_engine(load({"CHAT_DB_URL": sqlite_url}))
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(users).values(
                id=1,
                username="a",
                username_key="a",
                password_hash="x",
                disabled=False,
                created_at=0,
            )
        )
        rows = {
            "live": dict(expires_at=NOW + DAY_MS, revoked_at=None),
            "expired-yesterday": dict(expires_at=NOW - DAY_MS, revoked_at=None),
            "expired-long-ago": dict(expires_at=NOW - 31 * DAY_MS, revoked_at=None),
            "logged-out-long-ago": dict(expires_at=NOW + DAY_MS, revoked_at=NOW - 40 * DAY_MS),
            "logged-out-today": dict(expires_at=NOW + DAY_MS, revoked_at=NOW - 1),
        }
        for name, times in rows.items():
            conn.execute(
                insert(sessions).values(
                    user_id=1,
                    token_hash=name,
                    created_at=0,
                    last_used_at=0,
                    ip="192.0.2.1",
                    **times,
                )
            )
    store = AuthStore(engine)
    assert forget_old_sessions(store, NOW, retention_days=30) == 2
    with engine.connect() as conn:
        left = set(conn.execute(select(sessions.c.token_hash)).scalars())
    assert left == {"live", "expired-yesterday", "logged-out-today"}
    # Retention 0: whatever has ended goes at the next pass.
    assert forget_old_sessions(store, NOW, retention_days=0) == 2
    with engine.connect() as conn:
        assert list(conn.execute(select(sessions.c.token_hash)).scalars()) == ["live"]
    engine.dispose()


def test_auth_runs_the_retention_job(sqlite_url: str):
    settings = load({"CHAT_DB_URL": sqlite_url})
    engine = make_engine(settings)
    service = build(engine, settings)
    assert [job.name for job in service.jobs] == ["forget-old-sessions"]
    engine.dispose()
