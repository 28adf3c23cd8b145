"""Rooms: creating, joining, leaving, listing them and their members."""

from __future__ import annotations

from typing import Any

from loguru import logger
from sqlalchemy.exc import IntegrityError

from chatroom.bus_contract import Control, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ROOM_LIST_LIMIT, VISIBILITIES, ErrorCode
from chatroom.service import Handler, RequestContext
from services.social.handlers.access import (
    banned_from,
    check_room_name,
    existing_room,
    member_event,
    member_room,
    no_such_room,
    not_direct,
)
from services.social.store import SocialStore
from services.social.store.queries import Tx
from services.social.store.rooms import GROUP, MEMBER, OWNER, PRIVATE, PUBLIC, room_key, room_ref

# What a member who blocks the viewer shows them: no presence, status or picture.
UNSHOWN = {"online": False, "status": "", "avatar": None, "last_seen": None}


def without_version(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "presence_version"}


def _joinable(tx: Tx, name: str) -> Any:
    room = not_direct(existing_room(tx.room_named(name), name), name)
    if room.deleted_at is not None:
        raise no_such_room(name)
    if room.kind != GROUP:
        raise ServiceError(ErrorCode.FORBIDDEN, f"'{room.name}' cannot be joined or left")
    return room


class RoomHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            "room.create": self.room_create,
            "room.join": self.room_join,
            "room.leave": self.room_leave,
            "room.list": self.room_list,
            "room.members": self.room_members,
        }

    def _membership_changed(
        self, ctx: RequestContext, room: Any, user_id: int, joined: bool
    ) -> None:
        # Control fields (_join/_leave) tell every edge holding a session of this user
        # to start or stop delivering the room's messages to it.
        control = {Control.JOIN: room.id} if joined else {Control.LEAVE: room.id}
        name = "room.joined" if joined else "room.left"
        ctx.publish(user_topic(user_id), {"event": name, "room": room_ref(room), **control})
        user = {"id": user_id, "username": ctx.username}
        ctx.publish(room_topic(room.id), member_event(room.name, user, joined))

    def room_create(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        try:
            visibility = args.get("visibility") or "public"
            if visibility not in VISIBILITIES:
                raise bad_request("visibility", "visibility is public or private")
            with self.store.transaction() as tx:
                name = check_room_name(args["room"])
                if tx.room_named(name) is not None:
                    # A private or deleted room's name is taken too (names are unique
                    # and never reused): this says only that the name is taken.
                    raise ServiceError(
                        ErrorCode.CONFLICT, f"the name '{name}' is taken; choose another"
                    )
                tx.create_group(name, user_id, visibility)
                room = tx.room_named(name)
        except IntegrityError:  # created by someone else between our check and insert
            raise ServiceError(
                ErrorCode.CONFLICT, f"a room called '{args['room'][:64]}' exists; join it"
            ) from None
        logger.info("user {} created {} room {}", user_id, visibility, room.id)
        self._membership_changed(ctx, room, user_id, True)
        return {"room": {**room_ref(room), "role": OWNER}}

    def room_join(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Join a public group room; only a new membership is announced. A private room
        is joined only by invitation: to anyone else it does not exist."""
        user_id = ctx.require_user()
        with self.store.transaction() as tx:
            room = _joinable(tx, args["room"])
            is_new = not tx.is_member(room, user_id)
            if is_new and room.visibility == PRIVATE:
                raise no_such_room(args["room"])
            if is_new and tx.is_banned(room.id, user_id):
                raise banned_from(room)
            if is_new:
                tx.add_member(room.id, user_id)
                # What was said before is not unread: the marker starts at the end.
                tx.advance_marker(user_id, room.id, room.last_seq)
            role = tx.role_of(room.id, user_id)
        if is_new:
            self._membership_changed(ctx, room, user_id, True)
        return {"room": {**room_ref(room), "role": role}}

    def room_leave(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        with self.store.transaction() as tx:
            room = _joinable(tx, args["room"])
            role = tx.role_of(room.id, user_id)
            if role is None:
                if room.visibility == PRIVATE:
                    raise no_such_room(args["room"])
                raise ServiceError(ErrorCode.NOT_FOUND, f"you are not a member of '{room.name}'")
            if role == OWNER and tx.owner_count(room.id) == 1:
                raise ServiceError(
                    ErrorCode.CONFLICT,
                    f"you are the last owner of '{room.name}': make another member owner"
                    " first, or delete the room",
                )
            tx.remove_member(room.id, user_id)
        self._membership_changed(ctx, room, user_id, False)
        return {"room": room_ref(room)}

    def room_list(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """A server may have more rooms than a reply can carry: the client searches
        (`query`, folded like names) and gets at most `limit`, with has_more."""
        key_part = room_key(args.get("query") or "")
        limit = args.get("limit") or ROOM_LIST_LIMIT
        with self.store.reading() as tx:
            found, more = tx.list_rooms(ctx.require_user(), key_part, limit)
        return {"rooms": found, "has_more": more}

    def room_members(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        room = member_room(args["room"], user_id)(self.store)
        with self.store.reading() as tx:
            ids = tx.member_ids(room, self.settings.room_members_max)
            roles = tx.roles_in(room.id, ids)
            # Without presence_version: members get no presence pushes to order, and
            # how often a stranger came and went is not theirs to count.
            members = [
                {**without_version(m), "role": roles.get(m["id"], MEMBER)}
                for m in tx.user_entries(ids)
            ]
            if self.settings.status_visibility == "friends":
                # Strangers' statuses are blanked: only the viewer's and their friends'.
                shown = {user_id, *tx.friend_ids(user_id)}
                members = [m if m["id"] in shown else {**m, "status": ""} for m in members]
            # Members who block the viewer show nothing of themselves to them: in a
            # group, a member with no presence, status or picture; in a public room
            # (whose list is who is online) they are left out, as if offline.
            blockers = tx.blockers_among(user_id, ids)
            if room.kind == PUBLIC:
                members = [m for m in members if m["id"] not in blockers]
            members = [{**m, **UNSHOWN} if m["id"] in blockers else m for m in members]
        return {"room": room.name, "members": members}
