"""read.mark, batched at the edge: the marks this edge's connections send within
`read_mark_linger_ms` of each other go to social as one request (InternalOp.READ_MARKS),
which commits them in one transaction (services/social/store/marks.py) and answers each
one; each client then gets its own reply, as for any op, after its mark is committed.

Why: a client marks what it has read at most every 3 s per conversation, so 1,000
members reading a busy room send over 300 marks a second. One request each cost social
about 200 µs of CPU apiece (its request path, a batch of one or two in the database),
more than the messages they read (docs/benchmarks.md, "Typing and read markers"). A
mark's reply waits at most the linger longer: nothing a person sees.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from loguru import logger

from chatroom.bus_client import BusClient
from chatroom.bus_contract import InternalOp
from chatroom.errors import ServiceError, internal_error
from chatroom.protocol import ErrorCode, reply_ok
from services.tcp_edge.core import Request
from services.tcp_edge.login import bus_context

if TYPE_CHECKING:
    from services.tcp_edge.connection import Connection

Waiting = tuple[dict[str, Any], dict[str, Any], asyncio.Future]  # ctx, args, the answer

# Marks in one request at most (social's MarkWriter takes up to 500 in a transaction).
MAX_MARKS = 256


class MarkBatches:
    def __init__(self, bus: BusClient, edge_id: str, linger_s: float) -> None:
        self.bus = bus
        self.edge_id = edge_id
        self.linger_s = linger_s
        self._waiting: list[Waiting] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task] = set()  # referenced until done

    async def mark(self, conn: Connection, request: Request) -> list[dict[str, Any]]:
        """The local op for read.mark: join the next batch, answer when it is back."""
        answer = asyncio.get_running_loop().create_future()
        ctx = bus_context(self.edge_id, conn, conn.session)
        self._waiting.append((ctx, request.args, answer))
        if len(self._waiting) >= MAX_MARKS or self.linger_s <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self.flush)
        return [reply_ok(request.request_id, **(await answer))]

    def flush(self) -> None:
        """Send what is waiting now (the linger's end, a full batch, or the drain)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Waiting]) -> None:
        try:
            outcomes = await self._ask(batch)
            for (_, _, answer), outcome in zip(batch, outcomes, strict=True):
                if answer.done():
                    continue  # its connection closed meanwhile
                if outcome.get("ok"):
                    answer.set_result(outcome.get("result") or {})
                else:
                    answer.set_exception(ServiceError.from_dict(outcome.get("error")))
        except ServiceError as exc:
            _fail(batch, exc)
        except Exception:  # noqa: BLE001 - a reply of the wrong shape, a closed socket
            logger.exception("a batch of {} read marks failed", len(batch))
        finally:
            # Whatever went wrong, nobody is left waiting for ever.
            _fail(batch, internal_error())

    async def _ask(self, batch: list[Waiting]) -> list[dict[str, Any]]:
        """Social's outcome per mark, in order."""
        marks = [{"ctx": ctx, "args": args} for ctx, args, _ in batch]
        try:
            # Safe to send twice: a marker only moves forward.
            ctx = {"edge": self.edge_id}
            reply = await self.bus.call(
                "social", InternalOp.READ_MARKS, {"marks": marks}, ctx, retry=True
            )
        except ServiceError as exc:
            if exc.code != ErrorCode.UNKNOWN_OP:
                raise
            # A social replica older than this edge (a rolling upgrade): one by one.
            return list(await asyncio.gather(*(self._one(ctx, args) for ctx, args, _ in batch)))
        outcomes: list[dict[str, Any]] = reply["marks"]
        return outcomes

    async def _one(self, ctx: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await self.bus.call("social", "read.mark", args, ctx, retry=True)
        except ServiceError as exc:
            return {"ok": False, "error": exc.to_dict()}
        return {"ok": True, "result": result}


def _fail(batch: list[Waiting], error: ServiceError) -> None:
    for _, _, answer in batch:
        if not answer.done():
            answer.set_exception(error.copy())
