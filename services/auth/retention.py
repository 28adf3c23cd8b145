"""Forgetting old sessions: each row keeps a token hash and the address a login came
from, which are personal data; nothing needs them once the session is over and the
retention period (CHAT_SESSION_RETENTION_DAYS) has passed."""

from __future__ import annotations

from loguru import logger

from services.auth.store import AuthStore

RETENTION_PASS_S = 3600.0
DELETE_BATCH = 5000  # rows per statement: a big backlog never holds locks for long
DAY_MS = 24 * 3600 * 1000


def forget_old_sessions(store: AuthStore, now_ms: int, retention_days: float) -> int:
    """Delete sessions that expired, or were logged out, before the retention period;
    returns how many."""
    cutoff = now_ms - int(retention_days * DAY_MS)
    total = store.forget_sessions_ended_before(cutoff, DELETE_BATCH)
    if total:
        logger.info("deleted {} sessions that ended over {:g} days ago", total, retention_days)
    return total
