"""Operator requests (``chatroom admin``): list users, disable/enable, reset a password,
kick, export what auth keeps about a user, erase an account. They arrive over the bus
only: the edge forwards just the ops of the client protocol, so no client can call these.

Ending a user's sessions revokes their resume tokens and publishes a kick to the user's
topic; every edge holding a connection of that user closes it with a ``closing`` push.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from chatroom.bus_contract import AdminOp, Control, user_topic
from chatroom.errors import ServiceError, bad_request, user_id_arg
from chatroom.protocol import ErrorCode, closing_push
from chatroom.service import Handler, RequestContext
from services.auth.accounts import check_password, username_key
from services.auth.store import AuthStore
from services.auth.throttle import account_bucket_keys

KICK_MESSAGES = {
    ErrorCode.KICKED: "an operator ended your session; log in again",
    ErrorCode.ACCOUNT_DISABLED: "this account was disabled by an operator",
    ErrorCode.LOGGED_OUT: "this session was logged out on another connection; log in again",
    ErrorCode.ACCOUNT_DELETED: "this account was deleted on another device",
}
USERS_PAGE_MAX = 1000


def kick_event(code: str) -> dict[str, Any]:
    """A `closing` push the edges deliver and then close the user's connections (_kick)."""
    return {**closing_push(code, KICK_MESSAGES[code]), Control.KICK: True}


def logout_event(session_id: int, origin: str | None) -> dict[str, Any]:
    """Closes the connections using one session (one token) except `origin`, the one
    that logged out (it stays open, logged out)."""
    return {**kick_event(ErrorCode.LOGGED_OUT), Control.SESSION: session_id, Control.ORIGIN: origin}


# Why a device was signed out by another of the user's (others_out_event).
PASSWORD_CHANGED = "your password was changed on another device; sign in with the new one"
SIGNED_OUT_ELSEWHERE = "another of your devices signed this one out; sign in again"


def others_out_event(keep_session: int, why: str) -> dict[str, Any]:
    """Closes the user's connections but those of `keep_session` (the asker's device),
    saying `why` to them."""
    return {
        **closing_push(ErrorCode.LOGGED_OUT, why),
        Control.KICK: True,
        Control.KEEP: keep_session,
    }


class AdminHandlers:
    def __init__(self, store: AuthStore, hash_password: Any, min_password_chars: int) -> None:
        self.store = store
        self.hash_password = hash_password
        self.min_password_chars = min_password_chars

    def ops(self) -> dict[str, Handler]:
        return {
            AdminOp.USERS: self.list_users,
            AdminOp.DISABLE: self.disable,
            AdminOp.ENABLE: self.enable,
            AdminOp.RESET_PASSWORD: self.reset_password,
            AdminOp.KICK: self.kick,
            AdminOp.EXPORT: self.export,
            AdminOp.ERASE: self.erase,
            AdminOp.ERASE_FINISH: self.erase_finish,
        }

    def list_users(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        limit = args.get("limit", 100)
        if not isinstance(limit, int) or not 1 <= limit <= USERS_PAGE_MAX:
            raise bad_request("limit", f"limit must be 1..{USERS_PAGE_MAX}")
        match = args.get("match")
        if match and (not isinstance(match, str) or len(match) > 64):
            raise bad_request("match", "match must be a string of at most 64 characters")
        return {"users": self.store.list_users(limit, username_key(match) if match else None)}

    def disable(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        result = self._change(ctx, args, {"disabled": True}, ErrorCode.ACCOUNT_DISABLED)
        logger.info("admin: disabled user {} ({} sessions ended)", *result.values())
        return result

    def enable(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        result = self._change(ctx, args, {"disabled": False})
        logger.info("admin: enabled user {}", result["user_id"])
        return result

    def reset_password(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        password = args.get("password")
        if not isinstance(password, str):
            raise bad_request("password", "give the new password")
        check_password(password, self.min_password_chars)
        values = {"password_hash": self.hash_password(password)}
        result = self._change(ctx, args, values, ErrorCode.KICKED)
        logger.info("admin: reset the password of user {} ({} sessions ended)", *result.values())
        return result

    def kick(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        result = self._change(ctx, args, {}, ErrorCode.KICKED)
        logger.info("admin: kicked user {} ({} sessions ended)", *result.values())
        return result

    # ------------------------------------------------------------------ export, erase

    def export(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """What auth keeps about the user: the account, every session (times and
        addresses) and the failed-login buckets that name them. Never the password hash
        or the token hashes: they would help whoever gets the file attack the account,
        and tell its owner nothing."""
        name = _username(args)
        found = self.store.export_account(username_key(name))
        if found is None:
            raise _no_user(name)
        key = username_key(name)
        addresses = [s["ip"] for s in found["sessions"]]
        found["failed_logins"] = self.store.buckets.states(account_bucket_keys(key, addresses))
        logger.info("admin: exported what auth keeps of user {}", found["account"]["id"])
        return found

    def erase(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The first step of an erase: the account is marked erased (no login, no
        lookup from now on), disabled, its tokens revoked and its connections closed.
        Then social and media erase their data, and erase_finish the account itself.
        Run on an account already (partly) erased, it does nothing new."""
        name = _username(args)
        begun = self.store.begin_erase(username_key(name))
        if begun is None:
            raise _no_user(name)
        ctx.publish(user_topic(begun["user_id"]), kick_event(ErrorCode.ACCOUNT_DISABLED))
        logger.info(
            "admin: erasing user {} ({} sessions ended{})",
            begun["user_id"],
            begun["sessions_ended"],
            "; erased before" if begun["erased_before"] else "",
        )
        return begun

    def erase_finish(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The last step: sessions and failed-login buckets deleted, the row left as the
        tombstone "deleted user". Only for an account `erase` has marked."""
        user_id = user_id_arg(args)
        found = self.store.erased_account(user_id)
        if found is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"user {user_id} is not being erased (admin.erase first)"
            )
        key, addresses = found
        done = self.store.finish_erase(user_id, account_bucket_keys(key, addresses))
        logger.info("admin: erased user {} ({})", user_id, done)
        return {"user_id": user_id, **done}

    # ------------------------------------------------------------------ helpers

    def _change(
        self,
        ctx: RequestContext,
        args: dict[str, Any],
        values: dict[str, Any],
        end_sessions: str | None = None,
    ) -> dict[str, Any]:
        """Update the named user's row and, with a closing code, end their sessions:
        revoke every resume token and close their live connections."""
        name = _username(args)
        changed = self.store.change_user(username_key(name), values, end_sessions is not None)
        if changed is None:
            raise _no_user(name)
        user_id, ended = changed
        if end_sessions is None:
            return {"user_id": user_id}
        ctx.publish(user_topic(user_id), kick_event(end_sessions))
        return {"user_id": user_id, "sessions_ended": ended}


def _username(args: dict[str, Any]) -> str:
    name = args.get("username")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("username", "give a username")
    return name.strip()


def _no_user(name: str) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"no user named '{name[:64]}'")
