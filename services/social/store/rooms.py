"""Rooms', memberships', direct conversations' and messages' SQL (reads; messages are
written by the group commit, writer.py)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, case, delete, func, insert, or_, select
from sqlalchemy.orm import aliased

from chatroom import names
from chatroom.storage.db import inserted_id, now_ms
from chatroom.storage.schema import (
    LOBBY,
    avatars,
    live_sessions,
    messages,
    room_bans,
    room_members,
    rooms,
    users,
)
from services.social.store.batch_sql import StoredMessage, quote

PUBLIC = "public"  # everyone is a member (the lobby)
GROUP = "group"  # explicit members, anyone may join
DIRECT = "direct"  # the private conversation of two friends
PRIVATE = "private"  # rooms.visibility of a group only its members see (and invited)
OWNER, MODERATOR, MEMBER = "owner", "moderator", "member"  # room_members.role
EVENT = "event"  # messages.kind of a moderation event (store/moderation.py)


class RoomIdentity(NamedTuple):
    id: int
    name: str
    kind: str


def room_key(name: str) -> str:
    """Rooms are named like users: one key for 'Lobby', 'LOBBY' and 'Ｌｏｂｂｙ'."""
    return names.name_key(name.strip())


def direct_name(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"dm:{low}:{high}"


# What a room is, as queries read it for room_ref (the moderation fields of 0008 too).
ROOM_COLUMNS = (
    rooms.c.id,
    rooms.c.name,
    rooms.c.kind,
    rooms.c.last_seq,
    rooms.c.visibility,
    rooms.c.topic,
    rooms.c.announce,
)


def room_ref(row: Any) -> dict[str, Any]:
    """A room as clients get it; with the viewer's `role` when the row has one."""
    ref = {"id": row.id, "name": row.name, "kind": row.kind, "last_seq": row.last_seq}
    mapping = getattr(row, "_mapping", {})
    if "visibility" in mapping:
        ref.update(visibility=row.visibility, topic=row.topic, announce=bool(row.announce))
    if "role" in mapping:
        ref["role"] = row.role
    return ref


MESSAGE = "message"  # messages.kind of a message; "edit" and "delete" rows change one


def event_dict(row: Any, room_name: str) -> dict[str, Any]:
    """A moderation event (a row of kind "event", store/moderation.py) as history, sync
    and the room.event push show it: who (None: the operator) did what to whom."""
    action, _, detail = row.text.partition(":")
    by = None if row.username is None else {"id": row.sender_id, "username": row.username}
    target = None
    if row.target_id is not None:
        target = {"id": row.target_id, "username": row.target_username}
    return {
        "id": row.id,
        "room": room_name,
        "room_id": row.room_id,
        "seq": row.seq,
        "kind": EVENT,
        "action": action,
        "by": by,
        "target": target,
        "detail": detail,
        "ts": row.created_at,
    }


def message_dict(row: Any, room_name: str) -> dict[str, Any]:
    """A message as clients get it (reply, push, history, sync): a row of
    select_messages() or the writer's StoredMessage. Edited: edited_at; deleted: a
    tombstone, deleted true and empty text; a reply: reply_to, the quoted original."""
    out = {
        "id": row.id,
        "room": room_name,
        "room_id": row.room_id,
        "seq": row.seq,
        # The sender's avatar hash as of now (None: the default), for the message list.
        "from": {"id": row.sender_id, "username": row.username, "avatar": row.avatar},
        "text": row.text,
        "ts": row.created_at,
        "client_id": row.client_id,
    }
    if isinstance(row, StoredMessage):  # just stored: its quote came with the batch
        if row.reply is not None:
            out["reply_to"] = row.reply
        if row.mentions:  # the ids of the members it @mentions (live pushes only)
            out["mentions"] = list(row.mentions)
        return out
    if row.reply_to is not None:
        out["reply_to"] = quote(
            row.reply_to,
            row.quoted_seq,
            row.quoted_sender,
            row.quoted_username,
            row.quoted_text or "",
            row.quoted_deleted is not None,
        )
    out.update(change_marks(row.edited_at, row.deleted_at))
    if row.deleted_at is not None:
        out["text"] = ""
    return out


def change_marks(edited_at: int | None, deleted_at: int | None) -> dict[str, Any]:
    """What says a message was changed: an edited one's `edited_at`; a deleted one's
    `deleted` (true) and `deleted_at` (its text is gone)."""
    marks: dict[str, Any] = {}
    if edited_at is not None:
        marks["edited_at"] = edited_at
    if deleted_at is not None:
        marks.update(deleted=True, deleted_at=deleted_at)
    return marks


def change_dict(row: Any, room_name: str) -> dict[str, Any]:
    """An edit or delete event (a row whose kind is not "message") as sync lists it: which
    message changed, by whom, when; the new text is added by the caller (once)."""
    return {
        "id": row.id,
        "room": room_name,
        "room_id": row.room_id,
        "seq": row.seq,
        "kind": row.kind,
        "target": row.target_id,
        "from": {"id": row.sender_id, "username": row.username, "avatar": row.avatar},
        "ts": row.created_at,
    }


_quoted = aliased(messages, name="quoted")
_quoted_user = aliased(users, name="quoted_user")
_target_user = aliased(users, name="target_user")


_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.room_id,
    messages.c.seq,
    messages.c.sender_id,
    messages.c.text,
    messages.c.created_at,
    messages.c.client_id,
    users.c.username,
    avatars.c.hash.label("avatar"),
    # what the row is, and what has happened to it (migration 0006)
    *(messages.c[name] for name in ("kind", "target_id", "reply_to", "edited_at", "deleted_at")),
    # the message a reply answers, as it is now: quoted_seq, quoted_sender, ...
    *(
        _quoted.c[column].label(f"quoted_{label}")
        for column, label in (
            ("seq", "seq"),
            ("sender_id", "sender"),
            ("text", "text"),
            ("deleted_at", "deleted"),
        )
    ),
    _quoted_user.c.username.label("quoted_username"),
    # whom a moderation event acted on (kind "event": target_id is a user)
    _target_user.c.username.label("target_username"),
)


def select_messages():  # noqa: ANN201 - a SQLAlchemy Select
    return (
        select(*_MESSAGE_COLUMNS)
        # outer: the operator's moderation events have no user (sender_id 0)
        .outerjoin(users, users.c.id == messages.c.sender_id)
        .outerjoin(avatars, avatars.c.user_id == messages.c.sender_id)
        .outerjoin(_quoted, _quoted.c.id == messages.c.reply_to)
        .outerjoin(_quoted_user, _quoted_user.c.id == _quoted.c.sender_id)
        .outerjoin(
            _target_user,
            and_(messages.c.kind == EVENT, _target_user.c.id == messages.c.target_id),
        )
    )


class RoomQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def room_named(self, name: str) -> Any:
        """The room (ROOM_COLUMNS and deleted_at) with that name (by its key), or None;
        a deleted room too (its name stays taken)."""
        return self.conn.execute(
            select(*ROOM_COLUMNS, rooms.c.deleted_at).where(rooms.c.name_key == room_key(name))
        ).first()

    def create_lobby_unless_exists(self) -> None:
        """The public room every user belongs to (IntegrityError if another replica
        creates it at the same moment)."""
        exists = self.conn.execute(select(rooms.c.id).where(rooms.c.name_key == LOBBY)).first()
        if not exists:
            self.conn.execute(
                insert(rooms).values(
                    name=LOBBY, name_key=LOBBY, kind=PUBLIC, created_at=now_ms(), last_seq=0
                )
            )

    def create_group(self, name: str, user_id: int, visibility: str = "public") -> None:
        """A group room named `name`, with its creator as its first member and owner."""
        now = now_ms()
        room_id = inserted_id(
            self.conn.execute(
                insert(rooms).values(
                    name=name,
                    name_key=room_key(name),
                    kind=GROUP,
                    visibility=visibility,
                    created_by=user_id,
                    created_at=now,
                    last_seq=0,
                )
            )
        )
        self.add_member(room_id, user_id, now, OWNER)

    def create_direct(self, a: int, b: int) -> int:
        """The pair's conversation, both of them members; its id."""
        name = direct_name(a, b)
        now = now_ms()
        room_id = inserted_id(
            self.conn.execute(
                insert(rooms).values(
                    name=name, name_key=name, kind=DIRECT, created_at=now, last_seq=0
                )
            )
        )
        self.conn.execute(
            insert(room_members),
            [
                {"room_id": room_id, "user_id": a, "joined_at": now},
                {"room_id": room_id, "user_id": b, "joined_at": now},
            ],
        )
        return room_id

    def is_member(self, room: Any, user_id: int) -> bool:
        """A public room's (the lobby's) members are everyone it has not banned."""
        if room.kind == PUBLIC:
            return not self.is_banned(room.id, user_id)
        found = self.conn.execute(
            select(room_members.c.user_id).where(
                room_members.c.room_id == room.id, room_members.c.user_id == user_id
            )
        ).first()
        return found is not None

    def add_member(
        self, room_id: int, user_id: int, now: int | None = None, role: str = MEMBER
    ) -> None:
        joined = now_ms() if now is None else now
        self.conn.execute(
            insert(room_members).values(
                room_id=room_id, user_id=user_id, joined_at=joined, role=role
            )
        )

    def is_banned(self, room_id: int, user_id: int) -> bool:
        found = self.conn.execute(
            select(room_bans.c.user_id).where(
                room_bans.c.room_id == room_id, room_bans.c.user_id == user_id
            )
        ).first()
        return found is not None

    def remove_member(self, room_id: int, user_id: int) -> bool:
        """False if the user was not a member."""
        removed = self.conn.execute(
            delete(room_members).where(
                room_members.c.room_id == room_id, room_members.c.user_id == user_id
            )
        ).rowcount
        return bool(removed)

    def conversations_of(self, user_id: int, with_direct: bool = True) -> list[Any]:
        """Every room a user hears: public rooms, groups they joined, their direct chats."""
        return self.conversations_of_many([user_id], with_direct)[user_id]

    def conversations_of_many(
        self, user_ids: list[int], with_direct: bool = True
    ) -> dict[int, list[Any]]:
        """conversations_of for several users at once (three queries for any number):
        each row with the user's role in it (a public room's: member, or the row's)."""
        wanted = sorted(set(user_ids))
        public = self.conn.execute(select(*ROOM_COLUMNS).where(rooms.c.kind == PUBLIC)).all()
        # The lobby's exceptions: who is banned from it, who moderates it.
        banned, roles = set(), {}
        if public:
            public_ids = [r.id for r in public]
            banned = {
                (r.room_id, r.user_id)
                for r in self.conn.execute(
                    select(room_bans.c.room_id, room_bans.c.user_id).where(
                        room_bans.c.room_id.in_(public_ids), room_bans.c.user_id.in_(wanted)
                    )
                )
            }
            roles = {
                (r.room_id, r.user_id): r.role
                for r in self.conn.execute(
                    select(room_members.c.room_id, room_members.c.user_id, room_members.c.role)
                    .where(room_members.c.room_id.in_(public_ids))
                    .where(room_members.c.user_id.in_(wanted))
                )
            }
        joined = (
            select(room_members.c.user_id, room_members.c.role, *ROOM_COLUMNS)
            .join(rooms, rooms.c.id == room_members.c.room_id)
            .where(room_members.c.user_id.in_(wanted), rooms.c.kind != PUBLIC)
        )
        if not with_direct:
            joined = joined.where(rooms.c.kind != DIRECT)
        heard: dict[int, list[Any]] = {
            user_id: [
                _with_role(r, roles.get((r.id, user_id), MEMBER))
                for r in public
                if (r.id, user_id) not in banned
            ]
            for user_id in user_ids
        }
        for row in self.conn.execute(joined):
            heard[row.user_id].append(row)
        for user_rooms in heard.values():
            user_rooms.sort(key=lambda room: room.id)
        return heard

    def rooms_of_many(self, user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The rooms (not direct chats) each user belongs to, as the client lists them."""
        heard = self.conversations_of_many(user_ids, with_direct=False)
        return {user_id: [room_ref(r) for r in rooms_] for user_id, rooms_ in heard.items()}

    def list_rooms(
        self, user_id: int, key_part: str, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Rooms but direct chats whose name key contains `key_part` (the exact name
        first, then the lobby, then by name), at most `limit`, each with its member
        count and whether the user is in; and whether more matched. A private room only
        for its members; a deleted one for no one."""
        mine_query = select(room_members.c.room_id).where(room_members.c.user_id == user_id)
        rows = self.conn.execute(
            select(*ROOM_COLUMNS)
            .where(rooms.c.kind != DIRECT, rooms.c.name_key.contains(key_part, autoescape=True))
            .where(rooms.c.deleted_at.is_(None))
            .where(or_(rooms.c.visibility != PRIVATE, rooms.c.id.in_(mine_query)))
            .order_by(
                case((rooms.c.name_key == key_part, 0), else_=1),
                rooms.c.kind.desc(),
                rooms.c.name_key,
            )
            .limit(limit + 1)
        ).all()
        listed = rows[:limit]
        ids = [r.id for r in listed]
        counts: dict[int, int] = dict(
            self.conn.execute(
                select(room_members.c.room_id, func.count())
                .where(room_members.c.room_id.in_(ids))
                .group_by(room_members.c.room_id)
            ).all()
        )
        mine = {r.id for r in self.conversations_of(user_id, with_direct=False)}
        found = [
            {**room_ref(r), "members": counts.get(r.id, 0), "joined": r.id in mine} for r in listed
        ]
        return found, len(rows) > limit

    def roles_in(self, room_id: int, user_ids: list[int]) -> dict[int, str]:
        """user id -> role for those of `user_ids` with a row in the room (the lobby:
        its moderators)."""
        if not user_ids:
            return {}
        rows = self.conn.execute(
            select(room_members.c.user_id, room_members.c.role).where(
                room_members.c.room_id == room_id, room_members.c.user_id.in_(user_ids)
            )
        )
        return {r.user_id: r.role for r in rows}

    def member_ids(self, room: Any, limit: int) -> list[int]:
        """Members of a group; for a public room, the users online now."""
        if room.kind == PUBLIC:
            query = select(live_sessions.c.user_id).distinct()
        else:
            query = select(room_members.c.user_id).where(room_members.c.room_id == room.id)
        return [r[0] for r in self.conn.execute(query.limit(limit))]

    def peers_of(self, me_id: int, room_ids: list[int]) -> dict[int, dict[str, Any]]:
        """For direct rooms: room id -> the other person."""
        if not room_ids:
            return {}
        rows = self.conn.execute(
            select(room_members.c.room_id, users.c.id, users.c.username)
            .join(users, users.c.id == room_members.c.user_id)
            .where(room_members.c.room_id.in_(room_ids), room_members.c.user_id != me_id)
        )
        return {r.room_id: {"id": r.id, "username": r.username} for r in rows}

    def direct_conversations_of_many(self, user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Each user's private conversations as the login reply lists them: the room
        id, the other person and the last seq (so a client can count what arrived while
        it was away). One query for any number of users."""
        mine, theirs = room_members.alias("mine"), room_members.alias("theirs")
        rows = self.conn.execute(
            select(
                mine.c.user_id.label("owner"),
                rooms.c.id,
                rooms.c.last_seq,
                users.c.id.label("peer_id"),
                users.c.username,
            )
            .select_from(
                mine.join(rooms, rooms.c.id == mine.c.room_id)
                .join(
                    theirs,
                    and_(theirs.c.room_id == rooms.c.id, theirs.c.user_id != mine.c.user_id),
                )
                .join(users, users.c.id == theirs.c.user_id)
            )
            .where(mine.c.user_id.in_(sorted(set(user_ids))), rooms.c.kind == DIRECT)
            .order_by(rooms.c.id)
        )
        listed: dict[int, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
        for r in rows:
            peer = {"id": r.peer_id, "username": r.username}
            listed[r.owner].append({"id": r.id, "with": peer, "last_seq": r.last_seq})
        return listed

    def messages_before(
        self, room_id: int, before: int | None, limit: int, hidden: set[int] | None = None
    ) -> list[Any]:
        """Up to `limit` messages and moderation events of the room before seq `before`
        (None: the newest), newest first, each message as it is now (edits and deletes
        are applied to it, not listed: history skips their rows); none from the senders
        in `hidden` (blocked)."""
        query = select_messages().where(
            messages.c.room_id == room_id, messages.c.kind.in_((MESSAGE, EVENT))
        )
        if hidden:
            query = query.where(messages.c.sender_id.not_in(sorted(hidden)))
        if before is not None:
            query = query.where(messages.c.seq < before)
        return list(self.conn.execute(query.order_by(messages.c.seq.desc()).limit(limit)))

    def messages_after(self, room_id: int, since: int, limit: int) -> list[Any]:
        """Up to `limit` rows of the room after seq `since`, oldest first: messages as
        they are now, and the edit and delete events (kind) sync replays."""
        return list(
            self.conn.execute(
                select_messages()
                .where(messages.c.room_id == room_id, messages.c.seq > since)
                .order_by(messages.c.seq)
                .limit(limit)
            )
        )

    def message_by_client_id(
        self, sender_id: int, room_id: int, client_id: str
    ) -> dict[str, Any] | None:
        """The sender's message with this client_id in this conversation, if stored."""
        row = self.conn.execute(
            select_messages()
            .add_columns(rooms.c.name.label("room_name"))
            .join(rooms, rooms.c.id == messages.c.room_id)
            .where(
                and_(
                    messages.c.sender_id == sender_id,
                    messages.c.room_id == room_id,
                    messages.c.client_id == client_id,
                )
            )
        ).first()
        return message_dict(row, row.room_name) if row else None


class _RoleRow(NamedTuple):
    """A public room's row with the user's role in it (room_ref reads role)."""

    id: int
    name: str
    kind: str
    last_seq: int
    visibility: str
    topic: str
    announce: bool
    role: str

    @property
    def _mapping(self) -> dict[str, Any]:
        return self._asdict()


def _with_role(row: Any, role: str) -> _RoleRow:
    r = row
    return _RoleRow(r.id, r.name, r.kind, r.last_seq, r.visibility, r.topic, r.announce, role)
