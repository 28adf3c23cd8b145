"""Friendships and friend requests.

Each function runs inside the caller's transaction and returns the events to publish
as (user_id, event) pairs; the handler publishes them after the commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from chatroom.bus_contract import Control, InternalOp
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode, username_key
from chatroom.storage.db import now_ms
from chatroom.storage.schema import (
    avatars,
    friend_requests,
    friendships,
    last_seen,
    profiles,
    users,
)
from services.social import presence

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
UserEvents = list[tuple[int, dict[str, Any]]]


def find_user(conn: Connection, username: str) -> Any:
    row = conn.execute(
        select(users.c.id, users.c.username).where(users.c.username_key == username_key(username))
    ).first()
    if row is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"there is no user called '{username[:64]}'")
    return row


def user_ref(row: Any) -> dict[str, Any]:
    return {"id": row.id, "username": row.username}


def are_friends(conn: Connection, a: int, b: int) -> bool:
    found = conn.execute(
        select(friendships.c.user_id).where(
            friendships.c.user_id == a, friendships.c.friend_id == b
        )
    ).first()
    return found is not None


def _request_row(conn: Connection, from_id: int, to_id: int) -> Any:
    # No FOR UPDATE: the caller holds both users' profile locks, which serialise every
    # friend operation of the pair. (Locking a request row that does not exist yet
    # would take an InnoDB gap lock, and two such inserts deadlock each other.)
    return conn.execute(
        select(friend_requests).where(
            friend_requests.c.from_id == from_id, friend_requests.c.to_id == to_id
        )
    ).first()


def friend_entry(conn: Connection, friend_id: int) -> dict[str, Any]:
    return user_entries(conn, [friend_id])[0]


def user_entries(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    """What a friend list (or member list) shows for each user: name, presence,
    status, avatar hash (None: the default avatar) and, while offline, when they were
    last online (None: no record, e.g. offline since before it was kept). Two queries for any
    number of users (a login batch's friends of all its users included)."""
    if not ids:
        return []
    rows = conn.execute(
        select(users.c.id, users.c.username, profiles.c.status, avatars.c.hash, last_seen.c.ts)
        .select_from(
            users.outerjoin(profiles, profiles.c.user_id == users.c.id)
            .outerjoin(avatars, avatars.c.user_id == users.c.id)
            .outerjoin(last_seen, last_seen.c.user_id == users.c.id)
        )
        .where(users.c.id.in_(ids))
        .order_by(users.c.username)
    ).all()
    online = presence.online(conn, ids)
    return [
        {
            "id": r.id,
            "username": r.username,
            "online": r.id in online,
            "status": r.status or "",
            "avatar": r.hash,
            "last_seen": presence.shown_last_seen(r.id in online, r.ts),
        }
        for r in rows
    ]


def hide_status_from_strangers(
    conn: Connection, viewer_id: int, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Blank the status of everyone in `entries` who is neither the viewer nor one of
    their friends (CHAT_STATUS_VISIBILITY=friends)."""
    shown = {viewer_id, *presence.friend_ids(conn, viewer_id)}
    return [e if e["id"] in shown else {**e, "status": ""} for e in entries]


def _befriend(conn: Connection, a: int, b: int) -> None:
    now = now_ms()
    conn.execute(
        insert(friendships),
        [
            {"user_id": a, "friend_id": b, "since": now},
            {"user_id": b, "friend_id": a, "since": now},
        ],
    )


def request(conn: Connection, me: Any, target: Any, max_pending: int) -> tuple[dict, UserEvents]:
    if target.id == me.id:
        raise bad_request("username", "you cannot send a friend request to yourself")
    if are_friends(conn, me.id, target.id):
        raise ServiceError(ErrorCode.CONFLICT, f"you and {target.username} are already friends")
    theirs = _request_row(conn, target.id, me.id)
    if theirs is not None and theirs.status == PENDING:
        # They asked first: asking back is saying yes.
        return accept(conn, me, target)
    mine = _request_row(conn, me.id, target.id)
    if mine is not None and mine.status == PENDING:
        return {"status": PENDING, "to": user_ref(target)}, []  # asking twice is one request
    outstanding = conn.execute(
        select(func.count())
        .select_from(friend_requests)
        .where(friend_requests.c.from_id == me.id, friend_requests.c.status == PENDING)
    ).scalar_one()
    if outstanding >= max_pending:
        raise ServiceError(
            ErrorCode.LIMIT_REACHED,
            f"you have {outstanding} unanswered friend requests; wait for some answers",
        )
    now = now_ms()
    if mine is None:
        conn.execute(
            insert(friend_requests).values(
                from_id=me.id, to_id=target.id, status=PENDING, created_at=now, requester_told=True
            )
        )
    else:  # re-asking after a rejection or an unfriending
        conn.execute(
            update(friend_requests)
            .where(friend_requests.c.id == mine.id)
            .values(status=PENDING, created_at=now, decided_at=None, requester_told=True)
        )
    event = {"event": "friend.request", "from": user_ref(me), "ts": now}
    return {"status": PENDING, "to": user_ref(target)}, [(target.id, event)]


def _pending_from(conn: Connection, requester: Any, me_id: int) -> Any:
    row = _request_row(conn, requester.id, me_id)
    if row is None or row.status != PENDING:
        raise ServiceError(
            ErrorCode.NOT_FOUND, f"{requester.username} has no pending friend request to you"
        )
    return row


def accept(conn: Connection, me: Any, requester: Any) -> tuple[dict, UserEvents]:
    row = _pending_from(conn, requester, me.id)
    now = now_ms()
    conn.execute(
        update(friend_requests)
        .where(friend_requests.c.id == row.id)
        .values(status=ACCEPTED, decided_at=now)
    )
    # A crossing request the other way is answered by this too.
    conn.execute(
        update(friend_requests)
        .where(
            friend_requests.c.from_id == me.id,
            friend_requests.c.to_id == requester.id,
            friend_requests.c.status == PENDING,
        )
        .values(status=ACCEPTED, decided_at=now)
    )
    _befriend(conn, me.id, requester.id)
    me_entry, requester_entry = friend_entry(conn, me.id), friend_entry(conn, requester.id)
    events = [
        (requester.id, {"event": "friend.accepted", "friend": me_entry}),
        (me.id, {"event": "friend.accepted", "friend": requester_entry}),
    ]
    return {"status": ACCEPTED, "friend": requester_entry}, events


def reject(conn: Connection, me: Any, requester: Any) -> tuple[dict, UserEvents]:
    row = _pending_from(conn, requester, me.id)
    conn.execute(
        update(friend_requests)
        .where(friend_requests.c.id == row.id)
        .values(status=REJECTED, decided_at=now_ms(), requester_told=False)
    )
    # The requester must learn of it exactly once, online or not. The push carries an
    # acknowledgement the edge sends back once it has written it to one of their
    # sockets; until then it stays untold and goes out with their next login.
    event = {
        "event": "friend.rejected",
        "request_id": row.id,
        "by": user_ref(me),
        Control.ACK: {
            "service": "social",
            "op": InternalOp.NOTICE_DELIVERED,
            "args": {"request_id": row.id},
        },
    }
    closed = {"event": "friend.request.closed", "from": user_ref(requester)}
    return {"status": REJECTED}, [(requester.id, event), (me.id, closed)]


def mark_told(conn: Connection, me_id: int, request_id: int) -> None:
    conn.execute(
        update(friend_requests)
        .where(friend_requests.c.id == request_id, friend_requests.c.from_id == me_id)
        .values(requester_told=True)
    )


def remove(conn: Connection, me: Any, other: Any) -> tuple[dict, UserEvents]:
    removed = conn.execute(
        delete(friendships).where(
            or_(
                and_(friendships.c.user_id == me.id, friendships.c.friend_id == other.id),
                and_(friendships.c.user_id == other.id, friendships.c.friend_id == me.id),
            )
        )
    ).rowcount
    if not removed:
        raise ServiceError(ErrorCode.NOT_FOUND, f"{other.username} is not your friend")
    return {}, [
        (other.id, {"event": "friend.removed", "user": user_ref(me)}),
        (me.id, {"event": "friend.removed", "user": user_ref(other)}),
    ]


def friend_list(conn: Connection, me_id: int, at_login: bool = False) -> dict[str, Any]:
    """Friends, and requests both ways. `at_login` adds `pending_events`: rejections of
    this user's requests that happened while they were offline (marked told now)."""
    return friend_lists(conn, [me_id], at_login)[me_id]


def friend_lists(
    conn: Connection, user_ids: list[int], at_login: bool = False
) -> dict[int, dict[str, Any]]:
    """friend_list for several users at once (a fixed number of queries for any number)."""
    ids = sorted(set(user_ids))
    friend_rows = conn.execute(
        select(friendships.c.user_id, friendships.c.friend_id).where(friendships.c.user_id.in_(ids))
    ).all()
    entries = user_entries(conn, list({row.friend_id for row in friend_rows}))
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
    requests = conn.execute(
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
                if r.status == PENDING and r.to_id == user_id
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
        _mark_told(conn, [r.request_id for r in rejected])
        for user_id in ids:
            lists[user_id]["pending_events"] = [
                {
                    "event": "friend.rejected",
                    "request_id": r.request_id,
                    "by": {"id": r.to_id, "username": r.to_name},
                }
                for r in rejected
                if r.from_id == user_id
            ]
    return lists


def _mark_told(conn: Connection, request_ids: list[int]) -> None:
    if request_ids:
        conn.execute(
            update(friend_requests)
            .where(friend_requests.c.id.in_(request_ids))
            .values(requester_told=True)
        )
