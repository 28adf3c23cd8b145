"""All of auth's SQL: accounts and sessions (resume tokens); the rate buckets are in
services/auth/rate_buckets.py.

Plain values in and out; each method is one transaction (or one read), so the handlers
decide the rules (who may log in, what an operator may change, when to throttle) and
the store only how the rows are read and written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from chatroom.protocol import DELETED_USER
from chatroom.storage.db import inserted_id, now_ms
from chatroom.storage.schema import rate_buckets, sessions, users
from services.auth.own_sessions import OwnSessions
from services.auth.rate_buckets import RateBuckets

# Past logins looked at to decide whether an address is known to an account.
KNOWN_ADDRESSES_LOOKED_AT = 50
# An erased account's password hash: no argon2 hash, so nothing verifies against it.
ERASED_HASH = "!erased"
# An account exists (for logins, lookups, operators) until it is erased.
LIVE = users.c.erased_at.is_(None)


class AuthStore(OwnSessions):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.buckets = RateBuckets(engine)

    # ------------------------------------------------------------------ accounts

    def create_user(self, name: str, key: str, password_hash: str) -> int | None:
        """The new user's id, or None if the username (its key) is taken."""
        try:
            with self.engine.begin() as conn:
                return inserted_id(
                    conn.execute(
                        insert(users).values(
                            username=name,
                            username_key=key,
                            password_hash=password_hash,
                            disabled=False,
                            created_at=now_ms(),
                        )
                    )
                )
        except IntegrityError:
            return None

    def account_for_login(self, key: str, since_ms: int) -> tuple[Any, list[str]]:
        """The account (id, username, password_hash, disabled) or None, and the
        addresses it logged in from since then (newest first), read on one connection."""
        with self.engine.connect() as conn:
            row = _live_account(conn, key, users.c.password_hash, users.c.disabled)
            if row is None:
                return None, []
            addresses = conn.execute(
                select(sessions.c.ip)
                .where(sessions.c.user_id == row.id, sessions.c.created_at >= since_ms)
                .order_by(sessions.c.created_at.desc())
                .limit(KNOWN_ADDRESSES_LOOKED_AT)
            )
            return row, [r.ip for r in addresses]

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )

    # ------------------------------------------------------------------ sessions

    def create_session(
        self,
        user_id: int,
        token_hash: str,
        now: int,
        expires_at: int,
        ip: str,
        device: str | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            return inserted_id(
                conn.execute(
                    insert(sessions).values(
                        user_id=user_id,
                        token_hash=token_hash,
                        created_at=now,
                        last_used_at=now,
                        expires_at=expires_at,
                        ip=ip[:45],
                        device=device,
                    )
                )
            )

    def revoke_session(self, session_id: int | None, user_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id, sessions.c.user_id == user_id)
                .values(revoked_at=now_ms())
            )

    def live_sessions(
        self,
        token_hashes: list[str],
        refresh_after_ms: int,
        devices: dict[str, str] | None = None,
    ) -> list[Any]:
        """The unrevoked, unexpired sessions of these tokens (id, user_id, token_hash,
        expires_at, username, disabled); last_used_at is written for those not used for
        `refresh_after_ms`, in the same transaction (one statement for all). `devices`
        (token hash -> device name): a resume that names its device renames the
        session if it was called something else (one statement a renamed session)."""
        now = now_ms()
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(
                    sessions.c.id,
                    sessions.c.user_id,
                    sessions.c.token_hash,
                    sessions.c.expires_at,
                    sessions.c.last_used_at,
                    sessions.c.device,
                    users.c.username,
                    users.c.disabled,
                )
                .join(users, users.c.id == sessions.c.user_id)
                .where(
                    sessions.c.token_hash.in_(sorted(set(token_hashes))),
                    sessions.c.revoked_at.is_(None),
                    sessions.c.expires_at > now,
                    LIVE,
                )
            ).all()
            stale = [r.id for r in rows if now - r.last_used_at > refresh_after_ms]
            if stale:
                conn.execute(
                    update(sessions).where(sessions.c.id.in_(stale)).values(last_used_at=now)
                )
            for row in rows:
                device = (devices or {}).get(row.token_hash)
                if device is not None and device != row.device:
                    conn.execute(
                        update(sessions)
                        .where(sessions.c.id == row.id)
                        .values(device=device, last_used_at=now)
                    )
        return list(rows)

    def forget_sessions_ended_before(self, cutoff_ms: int, batch: int) -> int:
        """Delete the sessions that expired, or were logged out, before then, at most
        `batch` rows a transaction (a big backlog never holds locks for long); how many."""
        total = 0
        for ended in (sessions.c.expires_at < cutoff_ms, sessions.c.revoked_at < cutoff_ms):
            while True:
                with self.engine.begin() as conn:
                    ids = [
                        row.id
                        for row in conn.execute(
                            sessions.select()
                            .with_only_columns(sessions.c.id)
                            .where(ended)
                            .limit(batch)
                        )
                    ]
                    if ids:
                        conn.execute(delete(sessions).where(sessions.c.id.in_(ids)))
                total += len(ids)
                if len(ids) < batch:
                    break
        return total

    # ------------------------------------------------------------------ operators

    def list_users(self, limit: int, key_contains: str | None) -> list[dict[str, Any]]:
        """Users in id order, with their count of live resume tokens; `key_contains`
        matched against the username key as a bound parameter, LIKE wildcards escaped."""
        now = now_ms()
        active = (
            select(sessions.c.user_id, func.count().label("n"))
            .where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)
            .group_by(sessions.c.user_id)
            .subquery()
        )
        query = (
            select(users.c.id, users.c.username, users.c.disabled, users.c.created_at, active.c.n)
            .outerjoin(active, active.c.user_id == users.c.id)
            .where(LIVE)
            .order_by(users.c.id)
            .limit(limit)
        )
        if key_contains:
            query = query.where(users.c.username_key.contains(key_contains, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "username": r.username,
                "disabled": bool(r.disabled),
                "created_at": r.created_at,
                "tokens": r.n or 0,
            }
            for r in rows
        ]

    def change_user(
        self, key: str, values: dict[str, Any], end_sessions: bool
    ) -> tuple[int, int] | None:
        """In one transaction: set `values` on the user's row and, with `end_sessions`,
        revoke every resume token they hold. (user id, tokens revoked), or None if no
        user has that key."""
        with self.engine.begin() as conn:
            row = conn.execute(select(users.c.id).where(users.c.username_key == key, LIVE)).first()
            if row is None:
                return None
            if values:
                conn.execute(update(users).where(users.c.id == row.id).values(**values))
            if not end_sessions:
                return row.id, 0
            ended = conn.execute(
                update(sessions)
                .where(sessions.c.user_id == row.id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
            ).rowcount
            return row.id, ended

    # ------------------------------------------------------------------ export, erase

    def export_account(self, key: str) -> dict[str, Any] | None:
        """Everything auth keeps about the user with that name key (not erased): the
        account and every session (when, from which address and device; not the
        token hashes), or None."""
        with self.engine.connect() as conn:
            row = _live_account(conn, key, users.c.disabled, users.c.created_at)
            if row is None:
                return None
            rows = conn.execute(
                select(
                    sessions.c.id,
                    sessions.c.created_at,
                    sessions.c.last_used_at,
                    sessions.c.expires_at,
                    sessions.c.revoked_at,
                    sessions.c.ip,
                    sessions.c.device,
                )
                .where(sessions.c.user_id == row.id)
                .order_by(sessions.c.id)
            ).all()
        return {
            "account": {
                "id": row.id,
                "username": row.username,
                "disabled": bool(row.disabled),
                "created_at": row.created_at,
            },
            "sessions": [
                {
                    "id": r.id,
                    "created_at": r.created_at,
                    "last_used_at": r.last_used_at,
                    "expires_at": r.expires_at,
                    "revoked_at": r.revoked_at,
                    "ip": r.ip,
                    "device": r.device,
                }
                for r in rows
            ],
        }

    def begin_erase(self, key: str) -> dict[str, Any] | None:
        """The first step of erasing the account with that name key, in one transaction:
        mark it erased (from now on it does not exist for logins, lookups and operators),
        disable it and revoke every resume token. Finds an account already (partly)
        erased too, so an erase that stopped half-way can be run again. None: no such
        name. {user_id, username_key, sessions_ended, erased_before}"""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(users.c.id, users.c.erased_at).where(users.c.username_key == key)
            ).first()
            if row is None:
                return None
            if row.erased_at is None:
                conn.execute(
                    update(users)
                    .where(users.c.id == row.id)
                    .values(erased_at=now_ms(), disabled=True)
                )
            ended = conn.execute(
                update(sessions)
                .where(sessions.c.user_id == row.id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now_ms())
            ).rowcount
        return {
            "user_id": row.id,
            "sessions_ended": ended,
            "erased_before": row.erased_at is not None,
        }

    def erased_account(self, user_id: int) -> tuple[str, list[str]] | None:
        """An account marked erased: its name key and every address its sessions came
        from (to find its failed-login buckets); None if it is not marked erased."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(users.c.username_key).where(
                    users.c.id == user_id, users.c.erased_at.is_not(None)
                )
            ).first()
            if row is None:
                return None
            ips = conn.execute(
                select(sessions.c.ip).where(sessions.c.user_id == user_id).distinct()
            )
            return row.username_key, [r.ip for r in ips]

    def finish_erase(self, user_id: int, bucket_keys: list[str]) -> dict[str, int]:
        """The last step, for an account marked erased (begin_erase), in one transaction:
        its sessions and these failed-login buckets deleted, its row made the tombstone
        (name DELETED_USER, no password; the id stays the author of its messages and the
        name key stays taken). Safe to run again."""
        with self.engine.begin() as conn:
            forgotten = conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount
            buckets = conn.execute(
                delete(rate_buckets).where(rate_buckets.c.bucket.in_(sorted(bucket_keys)))
            ).rowcount
            conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.erased_at.is_not(None))
                .values(username=DELETED_USER, password_hash=ERASED_HASH, disabled=True)
            )
        return {"sessions_deleted": forgotten, "buckets_deleted": buckets}


def _live_account(conn: Any, key: str, *columns: Any) -> Any:
    """The (id, username, *columns) of the account with that name key, unless erased."""
    return conn.execute(
        select(users.c.id, users.c.username, *columns).where(users.c.username_key == key, LIVE)
    ).first()
