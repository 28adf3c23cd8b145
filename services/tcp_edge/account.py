"""A user's own export and delete, run by the edge across the services, as a login is
(login.py): the edge already holds who asks, and it is the one process that talks to
auth, social and media alike. The order and the op names are chatroom/account_steps.py,
the same chain `chatroom admin export|erase` runs for operators (docs/architecture.md
says why the edge, not a service, runs it).

account.export comes in parts (chatroom.protocol.EXPORT_PARTS), a reply each, every
reply within the reply budget: the account (auth's part, then social's), the messages
sent (pages, from social), the avatar (media). `next` is the request for what follows.

account.delete: auth checks the password and marks the account (no login, no lookup,
every other connection closed), then social, media and auth's last step erase it; the
asking connection gets the reply and stays open, logged out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from chatroom import account_steps
from chatroom.bus_client import BusClient
from chatroom.errors import bad_request
from chatroom.protocol import EXPORT_PARTS, reply_ok
from services.tcp_edge.core import Request
from services.tcp_edge.login import bus_context

if TYPE_CHECKING:
    from services.tcp_edge.connection import Connection

AGAIN = "the account is closed; an operator finishes it with chatroom admin erase"


class OwnAccount:
    def __init__(
        self, bus: BusClient, edge_id: str, on_logout: Callable[[Connection], None]
    ) -> None:
        self.bus = bus
        self.edge_id = edge_id
        self._on_logout = on_logout

    def _caller(self, conn: Connection) -> account_steps.Call:
        ctx = bus_context(self.edge_id, conn, conn.session)

        async def call(service: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
            return await self.bus.call(service, op, args, ctx, retry=True)

        return call

    async def export(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        part = request.args.get("part", EXPORT_PARTS[0])
        if part not in EXPORT_PARTS:
            raise bad_request("part", f"part must be one of {', '.join(EXPORT_PARTS)}")
        call, op = self._caller(conn), account_steps.SELF.export
        result: dict[str, Any]
        if part == "account":
            auth = await call("auth", op, {})
            social = await call("social", op, {"part": "account"})
            result = {**auth, **social, "next": {"part": "messages", "after": 0}}
        elif part == "messages":
            page = await call("social", op, {"part": "messages", **request.args})
            sent = page["messages"]
            more = bool(page["has_more"] and sent)
            after = sent[-1]["id"] if more else None
            nxt = {"part": "messages", "after": after} if more else {"part": "avatar"}
            result = {"messages": sent, "next": nxt}
        else:
            media = await call("media", op, {})
            result = {"avatar": media["avatar"], "next": None}
        result.pop("user_id", None)
        return [reply_ok(request.request_id, part=part, **result)]

    async def delete(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        session = conn.session
        assert session is not None  # needs_login is checked before dispatch
        call = self._caller(conn)
        ctx = bus_context(self.edge_id, conn, session)
        # Not retried: a password check spends from the failed-login throttle.
        begun = await self.bus.call("auth", request.op_name, request.args, ctx)
        await account_steps.erase_after_begin(call, account_steps.SELF, session.user_id, AGAIN)
        conn.end_session()  # social has forgotten it with the rest
        conn.log_out()
        self._on_logout(conn)
        logger.info("user {} deleted their account", session.user_id)
        return [reply_ok(request.request_id, sessions_ended=begun["sessions_ended"])]
