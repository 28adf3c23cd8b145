"""Token resumes, checked in batches.

A reconnect storm (an edge restarted: thousands of clients resume at once) made one
query per resume, each with a pool checkout and a worker thread. Here every resume
queued while the previous batch was in the database is checked with one query; the
rare write (last_used_at, kept to the hour) is one statement for the batch.
"""

from __future__ import annotations

import hashlib
from asyncio import Future
from typing import Any

from chatroom.batching import Batcher, Queued
from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode
from services.auth.store import AuthStore

MAX_BATCH = 500
# last_used_at is kept to the hour: a reconnect storm then costs reads, not writes.
LAST_USED_PRECISION_MS = 3600 * 1000
ENDED = "this session has ended; log in with your password"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Resume(Queued):
    def __init__(self, token: str, device: str | None) -> None:
        self.token_hash = token_hash(token)
        self.device = device


class TokenResumer:
    def __init__(self, store: AuthStore) -> None:
        self.store = store
        self._batcher: Batcher[Resume] = Batcher("token-resumer", self._lookup, MAX_BATCH)

    def submit(self, token: str, device: str | None = None) -> Future:
        """`device`: the name the resuming client gives (checked), kept on the session.
        The future gives the live session's row (id, user_id, username, expires_at),
        or a ServiceError: bad_credentials (unknown, revoked or expired token) or
        account_disabled."""
        return self._batcher.submit(Resume(token, device))

    def _lookup(self, batch: list[Resume]) -> list[Any]:
        devices = {r.token_hash: r.device for r in batch if r.device is not None}
        rows = self.store.live_sessions(
            [r.token_hash for r in batch], LAST_USED_PRECISION_MS, devices
        )
        live = {row.token_hash: row for row in rows}
        outcomes: list[Any] = []
        for resume in batch:
            row = live.get(resume.token_hash)
            if row is None:
                outcomes.append(ServiceError(ErrorCode.BAD_CREDENTIALS, ENDED))
            elif row.disabled:
                outcomes.append(
                    ServiceError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")
                )
            else:
                outcomes.append(row)
        return outcomes
