"""All of social's SQL, behind SocialStore.

- `store.transaction()` / `store.reading()`: a Tx on one connection (one transaction),
  whose methods are the queries (presence.py, friends.py, rooms.py, reads.py, edits.py,
  accounts.py; joined in queries.py). A handler that
  checks and then writes does both on the one Tx, so the check holds for the write.
- Methods of the store itself run on their own connection: identities remembered for
  the life of the process (rooms and users are never renamed; an erased user's row
  stays, see store/accounts.py), profiles,
  the lobby, and the two batched paths: messages through the group commit (writer.py,
  batch_sql.py, roundtrips.py) and logins through the session opener (sessions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from chatroom.names import username_key
from chatroom.storage.db import now_ms
from chatroom.storage.schema import LOBBY, profiles
from services.social.store.marks import MarkWriter
from services.social.store.members import MemberChecks
from services.social.store.queries import Tx
from services.social.store.rooms import DIRECT, RoomIdentity, direct_name, room_key
from services.social.store.sessions import SessionOpener
from services.social.store.writer import GroupWriter

PROFILE_CACHE_MAX = 1_000_000  # user ids (a few tens of MB at most)


class Remembered:
    """key -> value for values that never change once they exist (a room's identity, a
    user's id), loaded from the database the first time only (None, for a value that
    does not exist yet, is not remembered). Bounded: past `limit` entries it starts
    again from empty."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self._values: dict[Any, Any] = {}
        self.limit = limit

    def get(self, key: Any) -> Any:
        return self._values.get(key)

    def load(self, key: Any, loader: Callable[[], Any]) -> Any:
        value = self._values.get(key)
        if value is None:
            value = loader()
            if value is None:
                return None
            if len(self._values) >= self.limit:
                self._values.clear()
            self._values[key] = value
        return value

    def put(self, key: Any, value: Any) -> None:
        """Remember a value found some other way (unless one is remembered already)."""
        self.load(key, lambda: value)


class SocialStore:
    def __init__(self, engine: Engine, commit_delay_s: float = 0.0) -> None:
        self.engine = engine
        self.writer = GroupWriter(engine, commit_delay_s)
        self.sessions = SessionOpener(self.transaction)
        # The two batched paths, called straight (a message's hot path):
        # add_message(room_id, sender_id, text, client_id, friend_of_sender, member_check,
        # reply_to, in_public)
        # queues a message for the group commit (GroupWriter.submit); open_session(
        # user_id, edge_id, conn_id) a login for the session opener (SessionOpener.submit).
        self.add_message = self.writer.submit
        self.open_session = self.sessions.submit
        # mark_read(user_id, room_id, seq, peer_id): a read.mark for the group commit of
        # markers (MarkWriter.submit).
        self.marks = MarkWriter(engine)
        self.mark_read = self.marks.submit
        # Typing's membership checks (MemberChecks.submit(room, user_id) -> bool).
        self.member_checks = MemberChecks(engine)
        self._rooms = Remembered()  # room key -> RoomIdentity
        self._users = Remembered()  # username key -> (id, username)
        self._profiles_seen: set[int] = set()

    def start(self) -> None:
        """Start the message writer (its thread and connection) now, not at the first
        send."""
        self.writer.start()
        self.marks.start()
        self.member_checks.start()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.engine.begin() as conn:
            yield Tx(conn)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self.engine.connect() as conn:
            yield Tx(conn)

    def message_by_client_id(
        self, sender_id: int, room_id: int, client_id: str
    ) -> dict[str, Any] | None:
        with self.reading() as tx:
            return tx.message_by_client_id(sender_id, room_id, client_id)

    # ------------------------------------------------------------------ lobby, profiles

    def ensure_lobby(self) -> None:
        """Create the public room every user belongs to, once (safe for racing replicas)."""
        try:
            with self.transaction() as tx:
                tx.create_lobby_unless_exists()
        except IntegrityError:
            logger.debug("another replica created the lobby first")

    def profile_known(self, user_id: int) -> bool:
        return user_id in self._profiles_seen

    def ensure_profile(self, user_id: int) -> None:
        # Profiles are never deleted: once seen here, no need to look again.
        if user_id in self._profiles_seen:
            return
        with self.engine.connect() as conn:
            found = conn.execute(select(profiles.c.user_id).where(profiles.c.user_id == user_id))
            exists = found.first() is not None
        if not exists:
            try:
                with self.transaction() as tx:
                    tx.conn.execute(
                        insert(profiles).values(user_id=user_id, status="", updated_at=now_ms())
                    )
                    # A new user has not missed the lobby's past: nothing there is unread.
                    lobby = tx.room_named(LOBBY)
                    if lobby is not None:
                        tx.advance_marker(user_id, lobby.id, lobby.last_seq)
            except IntegrityError:
                pass  # created concurrently by another session of the same user
        if len(self._profiles_seen) < PROFILE_CACHE_MAX:
            self._profiles_seen.add(user_id)

    # ------------------------------------------------------------------ identities

    def room_identity(self, name: str) -> RoomIdentity | None:
        """The room's id, name and kind (None: no such room); asks the database only
        the first time."""
        return self._rooms.load(room_key(name), lambda: self._load_room(name))

    def _load_room(self, name: str) -> RoomIdentity | None:
        with self.reading() as tx:
            row = tx.room_named(name)
        return RoomIdentity(row.id, row.name, row.kind) if row else None

    def cached_room(self, name: str) -> RoomIdentity | None:
        """The room if this process already knows it, else None (no database)."""
        return self._rooms.get(room_key(name))

    def room_identity_on(self, tx: Tx, name: str) -> RoomIdentity | None:
        """room_identity, looked up on the caller's connection when not remembered."""
        room = self.cached_room(name)
        if room is None:
            row = tx.room_named(name)
            room = self._remember(RoomIdentity(row.id, row.name, row.kind)) if row else None
        return room

    def _remember(self, room: RoomIdentity) -> RoomIdentity:
        return self._rooms.load(room_key(room.name), lambda: room)

    def cached_direct_room(self, a: int, b: int) -> RoomIdentity | None:
        return self.cached_room(direct_name(a, b))

    def direct_room(self, a: int, b: int) -> RoomIdentity | None:
        """The pair's conversation; None if they never wrote."""
        return self.room_identity(direct_name(a, b))

    def create_direct_room(self, a: int, b: int) -> RoomIdentity:
        """Create the pair's conversation (or find the one created at the same moment)."""
        try:
            with self.transaction() as tx:
                room_id = tx.create_direct(a, b)
        except IntegrityError:
            # Both friends wrote first at the same moment; the other one created it.
            room = self.direct_room(a, b)
            assert room is not None, "the conflicting insert committed it"
            return room
        return self._remember(RoomIdentity(room_id, direct_name(a, b), DIRECT))

    def user_named(self, tx: Tx, username: str) -> Any:
        """The user (id, username) called `username`, or None; remembered once found
        (usernames never change; an account erased since is refused where it matters,
        in the write's transaction: friendships are gone, friend ops check again)."""
        return self._users.load(username_key(username), lambda: tx.user_named(username))

    def cached_user(self, username: str) -> Any:
        return self._users.get(username_key(username))

    def mentioned_users(
        self, names: list[tuple[str, ...]], sender_id: int, from_memory: bool = False
    ) -> tuple[int, ...] | None:
        """The ids of the users the @names (chatroom.names.mention_keys) name, each once,
        not the sender; for each name its first candidate key that is a user's. Known
        users come from memory, the others in one query; `from_memory`: None instead of
        the query (the caller then asks again from a worker thread)."""
        keys = {key for candidates in names for key in candidates}
        missing = [key for key in keys if self._users.get(key) is None]
        if missing and from_memory:
            return None
        if missing:
            with self.reading() as tx:
                for key, user in tx.users_with_keys(missing).items():
                    self._users.put(key, user)
        found: dict[int, None] = {}
        for candidates in names:
            user = next((u for k in candidates if (u := self._users.get(k)) is not None), None)
            if user is not None and user.id != sender_id:
                found[user.id] = None
        return tuple(found)
