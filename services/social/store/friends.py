"""Friendships' and friend requests' SQL, and the user entries friend lists show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from chatroom.names import username_key
from chatroom.protocol import Event
from chatroom.storage.db import now_ms
from chatroom.storage.schema import (
    avatars,
    friend_requests,
    friendships,
    last_seen,
    profiles,
    users,
)
from services.social.presence import shown_last_seen

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"


class FriendQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection  # with PresenceQueries' methods (online) on the same Tx
    online: Callable[[list[int]], set[int]]  # PresenceQueries.online, beside it in Tx
    # BlockQueries.blocked_lists, beside it in Tx
    blocked_lists: Callable[[list[int]], dict[int, list[dict[str, Any]]]]

    def user_named(self, username: str) -> Any:
        """The user (id, username) with that name (compared by its key), or None (also
        for an erased account, whose name stays taken)."""
        return self.conn.execute(
            select(users.c.id, users.c.username).where(
                users.c.username_key == username_key(username), users.c.erased_at.is_(None)
            )
        ).first()

    def user_by_id(self, user_id: int) -> Any:
        """The user (id, username) with that id, or None; an erased account too (its
        username is then "deleted user"), for the conversations that stay with it."""
        return self.conn.execute(
            select(users.c.id, users.c.username).where(users.c.id == user_id)
        ).first()

    def are_friends(self, a: int, b: int) -> bool:
        found = self.conn.execute(
            select(friendships.c.user_id).where(
                friendships.c.user_id == a, friendships.c.friend_id == b
            )
        ).first()
        return found is not None

    def friend_request(self, from_id: int, to_id: int) -> Any:
        """The request row from one user to another (any status), or None."""
        # No FOR UPDATE: the caller holds both users' profile locks, which serialise
        # every friend operation of the pair. (Locking a request row that does not
        # exist yet would take an InnoDB gap lock, and two such inserts deadlock.)
        return self.conn.execute(
            select(friend_requests).where(
                friend_requests.c.from_id == from_id, friend_requests.c.to_id == to_id
            )
        ).first()

    def pending_requests_from(self, user_id: int) -> int:
        return self.conn.execute(
            select(func.count())
            .select_from(friend_requests)
            .where(friend_requests.c.from_id == user_id, friend_requests.c.status == PENDING)
        ).scalar_one()

    def ask(self, from_id: int, to_id: int, earlier_id: int | None, now: int) -> None:
        """Make the request pending: a new row, or the earlier one asked again (after a
        rejection or an unfriending)."""
        if earlier_id is None:
            self.conn.execute(
                insert(friend_requests).values(
                    from_id=from_id,
                    to_id=to_id,
                    status=PENDING,
                    created_at=now,
                    requester_told=True,
                )
            )
        else:
            self.conn.execute(
                update(friend_requests)
                .where(friend_requests.c.id == earlier_id)
                .values(status=PENDING, created_at=now, decided_at=None, requester_told=True)
            )

    def accept_requests(self, request_id: int, me_id: int, requester_id: int, now: int) -> None:
        """Accept the request, and a crossing one the other way with it."""
        self.conn.execute(
            update(friend_requests)
            .where(friend_requests.c.id == request_id)
            .values(status=ACCEPTED, decided_at=now)
        )
        self.conn.execute(
            update(friend_requests)
            .where(
                friend_requests.c.from_id == me_id,
                friend_requests.c.to_id == requester_id,
                friend_requests.c.status == PENDING,
            )
            .values(status=ACCEPTED, decided_at=now)
        )

    def reject_request(self, request_id: int) -> None:
        """Rejected and not yet told to the requester (mark_told, once delivered)."""
        self.conn.execute(
            update(friend_requests)
            .where(friend_requests.c.id == request_id)
            .values(status=REJECTED, decided_at=now_ms(), requester_told=False)
        )

    def befriend(self, a: int, b: int) -> None:
        now = now_ms()
        self.conn.execute(
            insert(friendships),
            [
                {"user_id": a, "friend_id": b, "since": now},
                {"user_id": b, "friend_id": a, "since": now},
            ],
        )

    def unfriend(self, a: int, b: int) -> bool:
        """Both directions; False if they were not friends."""
        removed = self.conn.execute(
            delete(friendships).where(
                or_(
                    and_(friendships.c.user_id == a, friendships.c.friend_id == b),
                    and_(friendships.c.user_id == b, friendships.c.friend_id == a),
                )
            )
        ).rowcount
        return bool(removed)

    def mark_told(self, me_id: int, request_id: int) -> None:
        self.conn.execute(
            update(friend_requests)
            .where(friend_requests.c.id == request_id, friend_requests.c.from_id == me_id)
            .values(requester_told=True)
        )

    def friend_entry(self, friend_id: int) -> dict[str, Any]:
        return self.user_entries([friend_id])[0]

    def user_entries(self, ids: list[int]) -> list[dict[str, Any]]:
        """What a friend list (or member list) shows for each user: name, presence,
        status, avatar hash (None: the default avatar) and, while offline, when they
        were last online (None: no record, e.g. offline since before it was kept). Two
        queries for any number of users (a login batch's friends of all its users)."""
        if not ids:
            return []
        rows = self.conn.execute(
            select(
                users.c.id,
                users.c.username,
                profiles.c.status,
                profiles.c.presence_version,
                avatars.c.hash,
                last_seen.c.ts,
            )
            .select_from(
                users.outerjoin(profiles, profiles.c.user_id == users.c.id)
                .outerjoin(avatars, avatars.c.user_id == users.c.id)
                .outerjoin(last_seen, last_seen.c.user_id == users.c.id)
            )
            .where(users.c.id.in_(ids))
            .order_by(users.c.username)
        ).all()
        online = self.online(ids)
        return [
            {
                "id": r.id,
                "username": r.username,
                "online": r.id in online,
                "status": r.status or "",
                "avatar": r.hash,
                "last_seen": shown_last_seen(r.id in online, r.ts),
                "presence_version": r.presence_version or 0,
            }
            for r in rows
        ]

    def friend_list(self, me_id: int) -> dict[str, Any]:
        """Friends, and requests both ways."""
        return self.friend_lists([me_id])[me_id]

    def friend_lists(
        self, user_ids: list[int], at_login: bool = False
    ) -> dict[int, dict[str, Any]]:
        """friend_list for several users at once (a fixed number of queries for any
        number). `at_login` adds `pending_events`: rejections of each user's requests
        that happened while they were offline (marked told now), and `blocked`, whom
        each blocks. Requests from a user one blocks are not listed (never shown)."""
        ids = sorted(set(user_ids))
        blocked = self.blocked_lists(ids)
        blocks = {(user_id, b["id"]) for user_id in ids for b in blocked[user_id]}
        friend_rows = self.conn.execute(
            select(friendships.c.user_id, friendships.c.friend_id).where(
                friendships.c.user_id.in_(ids)
            )
        ).all()
        entries = self.user_entries(list({row.friend_id for row in friend_rows}))
        friends_of: dict[int, set[int]] = {user_id: set() for user_id in ids}
        for row in friend_rows:
            friends_of[row.user_id].add(row.friend_id)
        # Requests in one query: each row is the requester and the asked, both named.
        asker, asked = users.alias("asker"), users.alias("asked")
        wanted = friend_requests.c.status == PENDING
        if at_login:
            untold = and_(
                friend_requests.c.from_id.in_(ids),
                friend_requests.c.status == REJECTED,
                friend_requests.c.requester_told.is_(False),
            )
            wanted = wanted | untold
        requests = self.conn.execute(
            select(
                friend_requests.c.id.label("request_id"),
                friend_requests.c.from_id,
                friend_requests.c.to_id,
                friend_requests.c.created_at,
                friend_requests.c.status,
                asker.c.username.label("from_name"),
                asked.c.username.label("to_name"),
            )
            .join(asker, asker.c.id == friend_requests.c.from_id)
            .join(asked, asked.c.id == friend_requests.c.to_id)
            .where(
                or_(friend_requests.c.from_id.in_(ids), friend_requests.c.to_id.in_(ids)),
                wanted,
            )
            .order_by(friend_requests.c.created_at, friend_requests.c.id)
        ).all()
        lists = {
            user_id: {
                "friends": [e for e in entries if e["id"] in friends_of[user_id]],
                "incoming": [
                    {"user": {"id": r.from_id, "username": r.from_name}, "ts": r.created_at}
                    for r in requests
                    if r.status == PENDING
                    and r.to_id == user_id
                    and (user_id, r.from_id) not in blocks
                ],
                "outgoing": [
                    {"user": {"id": r.to_id, "username": r.to_name}, "ts": r.created_at}
                    for r in requests
                    if r.status == PENDING and r.from_id == user_id
                ],
            }
            for user_id in ids
        }
        if at_login:
            rejected = [r for r in requests if r.status == REJECTED]
            if rejected:
                self.conn.execute(
                    update(friend_requests)
                    .where(friend_requests.c.id.in_([r.request_id for r in rejected]))
                    .values(requester_told=True)
                )
            for user_id in ids:
                lists[user_id]["blocked"] = blocked[user_id]
                lists[user_id]["pending_events"] = [
                    {
                        "event": Event.FRIEND_REJECTED,
                        "request_id": r.request_id,
                        "by": {"id": r.to_id, "username": r.to_name},
                    }
                    for r in rejected
                    if r.from_id == user_id
                ]
        return lists
