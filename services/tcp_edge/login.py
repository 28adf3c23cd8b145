"""Login orchestration at the edge: a login asks auth who it is, then social to open
the session (the snapshot a client starts from); a logout or a closed socket ends it.

The edge dispatches the `login` and `logout` ops here (its other local ops are in
server.py's `local_ops`); the rest go to the services as they came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from chatroom.bus_client import BusClient
from chatroom.bus_contract import InternalOp, user_topic
from chatroom.errors import ServiceError
from chatroom.protocol import PROTOCOL_VERSION, SERVER_NAME, ErrorCode, reply_ok
from services.tcp_edge.core import Request, Session

if TYPE_CHECKING:
    from services.tcp_edge.connection import Connection
    from services.tcp_edge.delivery import EventDelivery


def bus_context(edge_id: str, conn: Connection, session: Session | None) -> dict[str, Any]:
    """Who asks, for a request the edge makes for a connection: from its session, never
    from the client's request, so a client cannot act as another user."""
    ctx: dict[str, Any] = {"ip": conn.ip, "edge": edge_id, "conn": conn.conn_id}
    if session is not None:
        ctx.update(
            user_id=session.user_id,
            username=session.username,
            session_id=session.session_id,
        )
    return ctx


class Logins:
    def __init__(
        self,
        bus: BusClient,
        edge_id: str,
        limits: dict[str, Any],
        on_login: Callable[[Connection], None],
        on_logout: Callable[[Connection], None],
        delivery: EventDelivery,
    ) -> None:
        self.bus = bus
        self.edge_id = edge_id
        self.limits = limits  # what every login reply announces
        self._on_login = on_login  # the connection no longer counts as not logged in
        self._on_logout = on_logout  # it counts again
        self.delivery = delivery  # what the user hears (from before the snapshot is read)

    def context(self, conn: Connection) -> dict[str, Any]:
        return bus_context(self.edge_id, conn, conn.session)

    async def login(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        """The reply, then the pushes saved for the user while they were away."""
        if conn.session is not None:
            raise ServiceError(ErrorCode.ALREADY_AUTHENTICATED, "already logged in; log out first")
        # A resume by token is safe to send again (it looks the session up and renames
        # its device at most), so it is retried like an idempotent op: one that landed
        # in an auth replica cut off from the rest is answered by another within the
        # request's time. A password login is not (each makes a session and a hash).
        auth = await self.bus.call(
            "auth",
            request.op_name,
            request.args,
            bus_context(self.edge_id, conn, None),
            retry=bool(request.args.get("token")),
        )
        user = auth["user"]
        session = Session(user["id"], user["username"], auth["session_id"], set())
        # What the user's topic carries from now on is kept, to follow the reply: the
        # snapshot below may be read before a change whose push comes before the
        # session's subscriptions would have been made (EventDelivery.hold).
        self.delivery.hold(conn, user_topic(user["id"]), session.session_id)
        logged_in = False
        try:
            snapshot = await self.bus.call(
                "social",
                InternalOp.SESSION_OPEN,
                ctx=bus_context(self.edge_id, conn, session),
                retry=True,
            )
            if not conn.is_open:
                return [reply_ok(request.request_id)]
            if conn.session is not None:  # a concurrent login on the same socket won
                raise ServiceError(
                    ErrorCode.ALREADY_AUTHENTICATED, "already logged in; log out first"
                )
            session.room_ids = {room["id"] for room in snapshot["rooms"]}
            conn.log_in(session)
            logged_in = True
        finally:
            hold = self.delivery.release(conn, logged_in)
        self._on_login(conn)
        self.delivery.blocks.replace(conn, {user["id"] for user in snapshot.get("blocked", [])})
        held: list[dict[str, Any]] = []
        if hold is not None:
            for control in hold.controls:  # joins, leaves and blocks since the snapshot
                self.delivery.apply_controls([conn], control)
            for ack in hold.acks:
                self.delivery.acknowledge_soon(ack, conn)
            # Sent after the reply: a change the snapshot already shows comes again, and
            # the client keeps the newer (presence versions, message ids and seqs).
            held = hold.events()
        pending = snapshot.pop("pending_events", [])
        reply = reply_ok(
            request.request_id,
            user=user,
            token=auth["token"],
            expires_at=auth["expires_at"],
            server={"name": SERVER_NAME, "protocol": PROTOCOL_VERSION},
            limits=self.limits,
            **snapshot,
        )
        return [reply, *pending, *held]

    async def logout(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        session = conn.session
        assert session is not None  # needs_login is checked before dispatch
        await self.bus.call(
            "auth", request.op_name, ctx=bus_context(self.edge_id, conn, session), retry=True
        )
        # Logged out here before social is told: while that call is under way the
        # connection already has its login timeout from now (not from when the socket
        # opened: the sweeper saw "no session, opened long ago" and closed it, seen in CI).
        conn.log_out()
        await self._session_closed(conn, session)
        self._on_logout(conn)
        return [reply_ok(request.request_id)]

    async def close_session(self, conn: Connection) -> None:
        """The session on `conn` ends (logout, or the socket closed): tell social."""
        session = conn.end_session()
        if session is not None:
            await self._session_closed(conn, session)

    async def _session_closed(self, conn: Connection, session: Session) -> None:
        try:
            await self.bus.call(
                "social",
                InternalOp.SESSION_CLOSE,
                ctx=bus_context(self.edge_id, conn, session),
                retry=True,
            )
        except ServiceError as exc:
            logger.warning("could not close session {}: {}", session.session_id, exc.code)
