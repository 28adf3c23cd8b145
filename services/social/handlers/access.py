"""Who may reach which conversation, and what a name or a message must be: the rules
the social handlers share, with their errors (docs/security.md, Authorisation)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Protocol

from chatroom import names
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode, Event
from chatroom.service import RequestContext
from chatroom.visible import shows_something
from services.social.store import SocialStore
from services.social.store.queries import Tx
from services.social.store.rooms import (
    DIRECT,
    MEMBER,
    MODERATOR,
    OWNER,
    PRIVATE,
    PUBLIC,
    RoomIdentity,
    room_key,
)


def me_of(ctx: RequestContext) -> SimpleNamespace:
    """The caller (id, username), as the edge said: never from a request field."""
    return SimpleNamespace(id=ctx.require_user(), username=ctx.username)


def no_such_room(name: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"there is no room called '{name[:64]}'")


def not_direct(room: Any, name: str) -> Any:
    """The room.* ops' rule: a direct conversation is not a room. It is reached only
    through dm.* (whose writes check the friendship), never by its name 'dm:a:b', so
    the answer is the same as for a room that does not exist, whoever asks."""
    if room is not None and room.kind == DIRECT:
        raise no_such_room(name)
    return room


def existing_room(room: Any, name: str) -> Any:
    if room is None:
        raise no_such_room(name)
    return room


def not_member(room: Any) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN, f"you are not a member of '{room.name}'; join it first"
    )


def not_friends(peer: Any) -> ServiceError:
    return ServiceError(
        ErrorCode.FORBIDDEN, f"you can only message friends; send {peer.username} a request"
    )


RANKS = {MEMBER: 1, MODERATOR: 2, OWNER: 3}


def rank_of(tx: Tx, room: Any, user_id: int) -> int:
    """0: not a member (or banned from the lobby); else RANKS of the user's role."""
    role = tx.role_of(room.id, user_id)
    if room.kind == PUBLIC:  # everyone is in the lobby but whom it banned
        return 0 if tx.is_banned(room.id, user_id) else RANKS[role or MEMBER]
    return RANKS[role] if role else 0


def banned_from(room: Any) -> ServiceError:
    return ServiceError(ErrorCode.BANNED, f"you are banned from '{room.name}'")


def hidden_or_not_member(tx: Tx, room: Any, user_id: int) -> ServiceError:
    """A non-member's answer: a private or deleted room does not exist for them; the
    lobby's only non-members are whom it banned; a public room says if they are banned
    (rather than "join it first")."""
    if room.visibility == PRIVATE or room.deleted_at is not None or room.kind == DIRECT:
        return no_such_room(room.name)
    if room.kind == PUBLIC or tx.is_banned(room.id, user_id):
        return banned_from(room)
    return not_member(room)


def existing_user(user: Any, username: str) -> Any:
    if user is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"there is no user called '{username[:64]}'")
    return user


def find_user(tx: Tx, username: str) -> Any:
    """The user (id, username) called `username`; raises not_found."""
    return existing_user(tx.user_named(username), username)


def peer_named(args: dict[str, Any]) -> str:
    """Which of `with` (a username) and `with_id` (a user id) names the other person
    of a direct chat; bad_request unless exactly one does."""
    if ("with" in args) == ("with_id" in args):
        raise bad_request("with", "name the other person: either 'with' or 'with_id', not both")
    return "with" if "with" in args else "with_id"


def direct_with_id(store: SocialStore, me_id: int, peer_id: int) -> tuple[RoomIdentity, Any]:
    """A direct chat by the other person's id, `with_id`: the way to one with an erased
    account, whose name ("deleted user") finds no one. The same not_found, naming no
    one, for an id that is nobody's and for a pair that never wrote, so an id reveals
    nothing about who it is."""
    room = store.direct_room(me_id, peer_id) if peer_id != me_id else None
    peer = None
    if room is not None:
        with store.reading() as tx:
            peer = tx.user_by_id(peer_id)
    if room is None or peer is None:
        raise ServiceError(
            ErrorCode.NOT_FOUND,
            "you have no conversation with that user id; open one from your list of chats",
        )
    return room, peer


def member_event(room_name: str, user: dict[str, Any], joined: bool) -> dict[str, Any]:
    """The room.member push to a room's members: `user` ({id, username}) joined or left
    (also when removed: kicked, banned, their account erased)."""
    return {"event": Event.ROOM_MEMBER, "room": room_name, "user": user, "joined": joined}


def user_ref(row: Any) -> dict[str, Any]:
    return {"id": row.id, "username": row.username}


def check_room_name(raw: str) -> str:
    """The name to store (the rule is chatroom.names'); bad_request if refused."""
    try:
        name = names.check_room_name(raw)
    except names.NameRefused as exc:
        raise bad_request("room", str(exc)) from None
    if room_key(name).startswith("dm:"):
        raise bad_request("room", "room names starting with 'dm:' are reserved")
    return name


def check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise bad_request("text", "a message cannot be empty")
    if not shows_something(text):
        # Zero-width spaces, joiners, BOMs, variation selectors, tags, controls only:
        # a message that looks empty (and a way to ping a room unseen).
        raise bad_request("text", "a message needs at least one visible character")
    if len(text) > max_chars:
        raise bad_request("text", f"a message is at most {max_chars} characters long")


class RoomResolver(Protocol):
    """Finds the room a message goes to (or is read from) and checks the sender may."""

    # The full lookup and check, in a worker thread.
    def __call__(self, store: SocialStore) -> RoomIdentity: ...

    # The room without the database when this process knows it, else None; the group
    # commit then checks membership if `must_be_member`.
    def cached(self, store: SocialStore) -> RoomIdentity | None: ...

    must_be_member: bool


class _Resolver:
    def __init__(
        self,
        resolve: Callable[[SocialStore], RoomIdentity],
        cached: Callable[[SocialStore], Any],
        member: bool,
    ) -> None:
        self._resolve, self.cached, self.must_be_member = resolve, cached, member

    def __call__(self, store: SocialStore) -> RoomIdentity:
        return self._resolve(store)


def member_room(name: str, user_id: int) -> RoomResolver:
    """A resolver for a room (public or group, never a direct conversation) the user
    must be a member of. Used by every room.* op that reads or writes messages or
    members; the group commit checks membership again in the write's transaction."""

    def resolve(store: SocialStore) -> RoomIdentity:
        room = not_direct(existing_room(store.room_identity(name), name), name)
        with store.reading() as tx:
            if not tx.is_member(room, user_id):
                raise refusal_of(tx, room.name, user_id)
        return room

    return _Resolver(resolve, lambda store: not_direct(store.cached_room(name), name), True)


def refusal_of(tx: Tx, name: str, user_id: int) -> ServiceError:
    """Why a non-member (or a user banned from the lobby) is refused the room called
    `name`, without telling them more than they may know."""
    return hidden_or_not_member(tx, existing_room(tx.room_named(name), name), user_id)


def known_room(room: RoomIdentity) -> RoomResolver:
    """A resolver for a room the caller has already found and authorised."""
    return _Resolver(lambda _store: room, lambda _store: room, member=False)
