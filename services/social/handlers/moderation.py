"""Room moderation: room.invite, room.kick, room.ban, room.unban, room.set_role,
room.update, room.delete, room.bans; and the operator's `chatroom admin room ...`
(admin.room, admin.audit), which acts with the same rules as an owner of every room
and is the only owner of the lobby.

Who may (docs/security.md, Authorisation), decided in the write's transaction after
the room's row is locked (store/moderation.py):
- ranks: operator > owner > moderator > member. Moderators and owners invite, kick,
  ban, unban and update (topic, announcement mode); only owners (and the operator) set
  roles and delete. Nobody acts on someone of their own rank or above (a moderator
  cannot kick another moderator or an owner; an owner cannot ban another owner);
- a non-member of a private (or deleted) room gets not_found, the answer for a room
  that does not exist, whatever they try; a non-member of a public room forbidden;
- the last owner cannot step down (set_role) or leave (room.leave): they hand over
  first (make someone else owner) or delete the room.
Every action is a sequenced event row in the room (sync and history replay it), a
`room.event` push to the room, a push to the user acted on (their sessions join or
leave the room: Control.JOIN/LEAVE) and a row of the room's audit trail.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from loguru import logger

from chatroom.bus_contract import AdminOp, Control, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ROLES, TOPIC_CHARS, ErrorCode, Event
from chatroom.service import Handler, RequestContext
from chatroom.storage.db import now_ms
from services.social.handlers.access import (
    RANKS,
    find_user,
    hidden_or_not_member,
    me_of,
    no_such_room,
    rank_of,
)
from services.social.store import SocialStore
from services.social.store.queries import Tx
from services.social.store.rooms import DIRECT, EVENT, MEMBER, MODERATOR, OWNER, PUBLIC, room_ref

OPERATOR_RANK = 4
OPERATOR = SimpleNamespace(id=None, username="operator")
AUDIT_LIMIT = 1000  # audit rows in one admin.audit reply


def _needs(rank: int, at_least: int, room: Any, what: str) -> None:
    if rank < at_least:
        who = "owners" if at_least >= RANKS[OWNER] else "moderators and owners"
        raise ServiceError(ErrorCode.FORBIDDEN, f"only {who} of '{room.name}' can {what}")


class ModerationHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        ops: dict[str, Handler] = {
            f"room.{action}": self._client_op(action)
            for action in ("invite", "kick", "ban", "unban", "set_role", "update", "delete")
        }
        ops["room.bans"] = self.room_bans
        # Operators only (chatroom admin room / audit; not in the client protocol).
        ops[AdminOp.ROOM] = self.admin_room
        ops[AdminOp.AUDIT] = self.admin_audit
        return ops

    def _client_op(self, action: str) -> Handler:
        def handler(ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
            return self._moderate(ctx, me_of(ctx), action, args)

        return handler

    # ------------------------------------------------------------------ the operator

    def admin_room(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """{"action": invite|kick|ban|unban|set_role|update, "room", "username", ...}:
        the room.* op of that name, as the operator (any room; deleting is the owners')."""
        action = args.get("action")
        if action not in ("invite", "kick", "ban", "unban", "set_role", "update"):
            raise bad_request(
                "action", "action is one of invite, kick, ban, unban, set_role, update"
            )
        for name, kind in (("room", str), ("username", str), ("role", str), ("topic", str)):
            if name in args and not isinstance(args[name], kind):
                raise bad_request(name, f"'{name}' must be a string")
        if not isinstance(args.get("room"), str):
            raise bad_request("room", "give the room's name")
        if "announce" in args and not isinstance(args["announce"], bool):
            raise bad_request("announce", "'announce' must be true or false")
        return self._moderate(ctx, OPERATOR, action, args)

    def admin_audit(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("room")
        if not isinstance(name, str):
            raise bad_request("room", "give the room's name")
        with self.store.reading() as tx:
            room = tx.room_named(name)
            if room is None or room.kind == DIRECT:
                raise no_such_room(name)
            return {"room": room.name, "audit": tx.audit_of(room.id, AUDIT_LIMIT)}

    # ------------------------------------------------------------------ reading

    def room_bans(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Who is banned (moderators and owners only: the list of whom to unban)."""
        user_id = ctx.require_user()
        with self.store.reading() as tx:
            room = self._visible_room(tx, args["room"])
            rank = rank_of(tx, room, user_id)
            if rank == 0:
                raise hidden_or_not_member(tx, room, user_id)
            _needs(rank, RANKS[MODERATOR], room, "see who is banned")
            return {"room": room.name, "bans": tx.bans_of(room.id)}

    # ------------------------------------------------------------------ acting

    def _visible_room(self, tx: Tx, name: str) -> Any:
        room = tx.room_named(name)
        if room is None or room.kind == DIRECT or room.deleted_at is not None:
            raise no_such_room(name)
        return room

    def _moderate(
        self, ctx: RequestContext, actor: Any, action: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        with self.store.reading() as tx:
            found = self._visible_room(tx, args["room"])  # which room to lock
        pushes: list[tuple[bytes, dict[str, Any]]] = []
        with self.store.transaction() as tx:
            seq = tx.next_seq(found.id)  # the room's row is locked from here on
            room = self._visible_room(tx, found.name)
            rank = OPERATOR_RANK if actor.id is None else rank_of(tx, room, actor.id)
            if rank == 0:
                assert actor.id is not None  # the operator ranks above everyone
                raise hidden_or_not_member(tx, room, actor.id)
            act = _Act(tx, room, actor, rank, seq, pushes)
            getattr(act, action)(args)
            if not act.events:  # nothing changed (room.update to what it was)
                raise _Unchanged(room)
        for topic, event in pushes:
            ctx.publish(topic, event)
        for event in act.events:
            logger.info(
                "room {}: {} by {} on user {} (seq {})",
                room.id,
                event["action"],
                "operator" if actor.id is None else f"user {actor.id}",
                event["target"]["id"] if event["target"] else "-",
                event["seq"],
            )
        return {"room": act.ref(), "events": act.events}


class _Unchanged(ServiceError):
    def __init__(self, room: Any) -> None:
        super().__init__(ErrorCode.CONFLICT, f"'{room.name}' is like that already; nothing changed")


class _Act:
    """One moderation request inside its transaction: the checks and the change of
    each action, the events it adds and the pushes to publish after the commit."""

    def __init__(self, tx: Tx, room: Any, actor: Any, rank: int, seq: int, pushes: list) -> None:
        self.tx, self.room, self.actor, self.rank = tx, room, actor, rank
        self._seq = seq  # taken (and the row locked) before the checks
        self.pushes = pushes
        self.events: list[dict[str, Any]] = []
        self.changes: dict[str, Any] = {}

    def ref(self) -> dict[str, Any]:
        ref = room_ref(self.room)
        ref.update(self.changes)
        return ref

    def _event(self, action: str, target: Any = None, detail: str = "") -> None:
        """The sequenced event row and audit row, and its push to the room."""
        seq = self._seq if not self.events else self.tx.next_seq(self.room.id)
        now = now_ms()
        target_id = None if target is None else target.id
        event_id = self.tx.add_event(
            self.room.id, seq, self.actor.id, action, target_id, detail, now
        )
        by = (
            None
            if self.actor.id is None
            else {"id": self.actor.id, "username": self.actor.username}
        )
        event = {
            "id": event_id,
            "room": self.room.name,
            "room_id": self.room.id,
            "seq": seq,
            "kind": EVENT,
            "action": action,
            "by": by,
            "target": None if target is None else {"id": target.id, "username": target.username},
            "detail": detail,
            "ts": now,
        }
        self.events.append(event)
        self.pushes.append((room_topic(self.room.id), {"event": Event.ROOM_EVENT, **event}))

    def _tell(self, user_id: int, name: str, control: str, reason: str) -> None:
        """The user's sessions start (JOIN) or stop (LEAVE) hearing the room."""
        event = {"event": name, "room": self.ref(), "reason": reason, control: self.room.id}
        self.pushes.append((user_topic(user_id), event))

    def _target(self, args: dict[str, Any]) -> tuple[Any, int]:
        """The user named, and their rank in the room (0: not in it)."""
        if not isinstance(args.get("username"), str):
            raise bad_request("username", "give the username of whom to act on")
        target = find_user(self.tx, args["username"])
        return target, rank_of(self.tx, self.room, target.id)

    def _outranked(self, target: Any, target_rank: int, what: str) -> None:
        if self.actor.id == target.id:
            raise bad_request("username", f"you cannot {what} yourself; use room.leave")
        if target_rank >= self.rank:
            raise ServiceError(
                ErrorCode.FORBIDDEN,
                f"you cannot {what} {target.username}: their role in '{self.room.name}' is"
                " not below yours",
            )

    def invite(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[MODERATOR], self.room, "invite")
        if self.room.kind == PUBLIC:
            raise ServiceError(ErrorCode.FORBIDDEN, f"everyone is in '{self.room.name}' already")
        target, target_rank = self._target(args)
        if target_rank:
            raise ServiceError(
                ErrorCode.CONFLICT, f"{target.username} is in '{self.room.name}' already"
            )
        if self.tx.is_banned(self.room.id, target.id):
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"{target.username} is banned from '{self.room.name}'; unban them first",
            )
        self.tx.add_member(self.room.id, target.id)
        self.tx.advance_marker(target.id, self.room.id, self._seq)  # nothing unread
        self._event("invite", target)
        self._tell(target.id, Event.ROOM_JOINED, Control.JOIN, "invited")

    def kick(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[MODERATOR], self.room, "kick")
        target, target_rank = self._target(args)
        if not target_rank:
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"{target.username} is not in '{self.room.name}'"
            )
        self._outranked(target, target_rank, "kick")
        # The lobby keeps everyone: a kick there ends their sessions' hearing it until
        # they log in again (a ban keeps them out).
        if self.room.kind != PUBLIC:
            self.tx.remove_member(self.room.id, target.id)
        self._event("kick", target)
        self._tell(target.id, Event.ROOM_LEFT, Control.LEAVE, "kicked")

    def ban(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[MODERATOR], self.room, "ban")
        target, target_rank = self._target(args)
        if self.tx.is_banned(self.room.id, target.id):
            raise ServiceError(ErrorCode.CONFLICT, f"{target.username} is banned already")
        self._outranked(target, target_rank, "ban")
        self.tx.ban(self.room.id, target.id, self.actor.id, now_ms())
        if self.room.kind != PUBLIC:
            self.tx.remove_member(self.room.id, target.id)
        self._event("ban", target)
        if target_rank:
            self._tell(target.id, Event.ROOM_LEFT, Control.LEAVE, "banned")

    def unban(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[MODERATOR], self.room, "unban")
        target, _ = self._target(args)
        if not self.tx.unban(self.room.id, target.id):
            raise ServiceError(ErrorCode.NOT_FOUND, f"{target.username} is not banned")
        self._event("unban", target)
        if self.room.kind == PUBLIC:  # back in the lobby at once
            self._tell(target.id, Event.ROOM_JOINED, Control.JOIN, "unbanned")

    def set_role(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[OWNER], self.room, "change roles")
        role = args.get("role")
        if role not in ROLES:
            raise bad_request("role", "role is one of owner, moderator, member")
        if self.room.kind == PUBLIC and role == OWNER:
            raise bad_request("role", f"the operator owns '{self.room.name}'; name moderators")
        target, target_rank = self._target(args)
        if not target_rank:
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"{target.username} is not in '{self.room.name}'"
            )
        if target_rank == RANKS[role]:
            raise ServiceError(ErrorCode.CONFLICT, f"{target.username} is a {role} already")
        if target_rank == RANKS[OWNER] and self.tx.owner_count(self.room.id) == 1:
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"'{self.room.name}' needs an owner: make someone else owner first",
            )
        if self.room.kind == PUBLIC:  # the lobby has rows only for its moderators
            if role == MEMBER:
                self.tx.remove_member(self.room.id, target.id)
            else:
                self.tx.add_member(self.room.id, target.id, role=role)
        else:
            self.tx.set_role(self.room.id, target.id, role)
        self._event("role", target, role)

    def update(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[MODERATOR], self.room, "change the topic or announcement mode")
        topic, announce = args.get("topic"), args.get("announce")
        if topic is None and announce is None:
            raise bad_request("topic", "give a topic, announce, or both")
        if topic is not None:
            topic = " ".join(topic.split())  # one line
            if len(topic) > TOPIC_CHARS:
                raise bad_request("topic", f"a topic is at most {TOPIC_CHARS} characters long")
            if topic != self.room.topic:
                self.tx.update_room(self.room.id, topic=topic)
                self.changes["topic"] = topic
                self._event("topic", None, topic)
        if announce is not None and announce != bool(self.room.announce):
            self.tx.update_room(self.room.id, announce=announce)
            self.changes["announce"] = announce
            self._event("announce", None, "on" if announce else "off")

    def delete(self, args: dict[str, Any]) -> None:
        _needs(self.rank, RANKS[OWNER], self.room, "delete it")
        if self.room.kind == PUBLIC:
            raise ServiceError(ErrorCode.FORBIDDEN, f"'{self.room.name}' cannot be deleted")
        self._event("delete")
        for user_id in self.tx.remove_all_members(self.room.id):
            self._tell(user_id, Event.ROOM_LEFT, Control.LEAVE, "deleted")
        self.tx.update_room(self.room.id, deleted_at=now_ms())
