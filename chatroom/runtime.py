"""The runtime every backend service shares.

It owns the ZeroMQ sockets, the request/reply envelope, error mapping, logging context,
health pings, the thread pool for blocking work and graceful shutdown on SIGTERM.
What travels on the bus (the envelope, topics, control fields) is chatroom.bus_contract;
what a handler sees (RequestContext, Job, Service, the deadline rule) is chatroom.service.
Handlers are plain functions ``handler(ctx, args) -> dict`` that know nothing of this;
they run in the thread pool. A handler may instead be a coroutine function: it then runs
on the event loop and must hand its blocking work to the pool itself
(``asyncio.to_thread`` uses the runtime's pool) - the message hot path does this so a
send waiting for its group commit does not hold a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import inspect
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zmq
import zmq.asyncio
from loguru import logger
from sqlalchemy.exc import OperationalError

from chatroom import buskeys, event_loop, metrics
from chatroom.bus_contract import (
    ADMIN_OP_PREFIX,
    EVENT_HWM,
    HEALTH_LIVE,
    PING_OP,
    EventStamps,
    event_frames,
    reply_error,
    reply_ok,
)
from chatroom.bus_links import BusLinks, set_link_heartbeats
from chatroom.config import Settings
from chatroom.errors import ServiceError, database_unavailable, internal_error
from chatroom.event_replay import EventReplay
from chatroom.framing import dumps, loads
from chatroom.logs import RepeatedErrors, request_context
from chatroom.protocol import ErrorCode
from chatroom.service import (
    DeadlinePassed,
    Handler,
    Job,
    RequestContext,
    Service,
    start_unless_expired,
)
from chatroom.zmq_io import LoopSocket

# A crash's traceback is logged once per (op, exception type) per this many seconds.
CRASH_LOG_WINDOW_S = 60.0
# Requests taken off the socket in one go when several are waiting.
RECEIVE_BURST = 64


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout; SQLite: "database is locked".
LOCK_CONFLICT_CODES = (1213, 1205)
DEADLOCK_ATTEMPTS = 4


def is_lock_conflict(exc: OperationalError) -> bool:
    args = getattr(exc.orig, "args", ())
    if args and args[0] in LOCK_CONFLICT_CODES:
        return True
    return "database is locked" in str(exc.orig)


class ServiceRuntime:
    def __init__(self, name: str, settings: Settings, service: Service) -> None:
        self.name = name
        self.settings = settings
        self.handlers = service.handlers
        self.jobs = service.jobs
        self.health_check = service.health_check
        self.replica = replica_id()
        self.handled = 0
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task] = set()
        # Requests in progress at once. Most wait for a worker thread; message sends wait
        # for the group commit without one, and the more of them are in progress, the
        # larger (and cheaper per message) the batches get.
        self._max_in_progress = settings.worker_threads * 32
        self._in_progress = 0
        self._slot_freed = asyncio.Event()
        self._executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix=name)
        self._crashes = RepeatedErrors(CRASH_LOG_WINDOW_S)
        # chatroom_requests_total / chatroom_request_duration_seconds of this service.
        self._meter = metrics.RequestMeter(name, service.handlers)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(self._executor)  # asyncio.to_thread in async handlers
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        zctx = zmq.asyncio.Context()
        keys = buskeys.client_keys(self.settings, self.name)
        # Every bus at once (CHAT_BUS_HOSTS): requests come through any of them and each
        # reply goes back through the bus it came by (a ROUTER answers on the same pipe).
        # Names are looked up by BusLinks, never in libzmq's I/O thread (see there).
        links = BusLinks(self.settings)
        self._sock = self._router(zctx, keys)
        links.attach(self._sock, f"{self.name}.back")
        # The operators' path, for a service that has operator ops.
        admin = any(op.startswith(ADMIN_OP_PREFIX) for op in self.handlers)
        if admin:
            self._admin_sock = self._router(zctx, keys)
            links.attach(self._admin_sock, f"{self.name}.admin.back")
        self._pub = zctx.socket(zmq.PUB)
        buskeys.secure_client(self._pub, keys)
        self._pub.setsockopt(zmq.LINGER, 1000)
        self._pub.setsockopt(zmq.SNDHWM, EVENT_HWM)
        self._pub.setsockopt(zmq.RCVHWM, 0)
        set_link_heartbeats(self._pub)  # a link that died unnoticed loses what it carries
        self._replay = EventReplay(self._pub)
        # Every event through every bus: an edge keeps the first copy of each (stamps).
        links.attach(self._pub, "events.in")
        self._stamps = EventStamps()
        # Events are sent straight through libzmq: a PUB socket never blocks (past its
        # high-water mark it drops) and never receives, so there is no pending receive
        # whose notification a send could use up (see zmq_io). pyzmq's awaited send
        # cost a future and a loop callback per event: 3-4 us, twice per direct message.
        self._pub_now: zmq.Socket[bytes] = zmq.Socket.shadow(self._pub.underlying)
        buses = ", ".join(f"{host}:{base}" for host, base in links.peers)
        logger.info("{} replica {} serving through {}", self.name, self.replica, buses)
        paths = {False: LoopSocket(self._sock)}  # by whether it is the operators' path
        if admin:
            paths[True] = LoopSocket(self._admin_sock)
        receivers = [asyncio.create_task(self._receive_loop(*path)) for path in paths.items()]
        receivers.append(asyncio.create_task(links.run()))
        receivers.append(asyncio.create_task(self._replay.run()))
        job_tasks = [asyncio.create_task(self._repeat(job)) for job in self.jobs]
        if self.settings.health_port:
            job_tasks.append(asyncio.create_task(self._serve_health(zctx)))
        await self._stopping.wait()
        logger.info("stopping: no new requests, draining {} in flight", len(self._inflight))
        links.detach(self._sock)  # the buses stop routing requests to this replica
        if admin:
            links.detach(self._admin_sock)
        background = [*receivers, *job_tasks]
        for task in background:
            task.cancel()
        # Wait for the cancelled tasks so their sockets are closed before term().
        await asyncio.gather(*background, return_exceptions=True)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self.settings.drain_timeout_s)
        for path in paths.values():
            path.stop()
        self._sock.close(linger=1000)
        if admin:
            self._admin_sock.close(linger=1000)
        self._pub.close(linger=1000)
        zctx.term()
        self._executor.shutdown(wait=False, cancel_futures=True)
        logger.info("stopped after {} requests", self.handled)

    def _router(
        self, zctx: zmq.asyncio.Context, keys: buskeys.ClientKeys | None
    ) -> zmq.Socket[bytes]:
        """A ROUTER connected to a queue's back end on every bus: a request arrives with
        the identity of the bus that brought it first, and the reply, sent with the
        request's routing frames, returns through that bus. A plain socket: a LoopSocket
        drives it (zmq_io)."""
        sock: zmq.Socket[bytes] = zmq.Socket(zctx, zmq.ROUTER)
        buskeys.secure_client(sock, keys)
        sock.setsockopt(zmq.LINGER, 1000)
        set_link_heartbeats(sock)
        return sock

    async def _receive_loop(self, admin: bool, requests: LoopSocket) -> None:
        while True:
            while self._in_progress >= self._max_in_progress:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            free = self._max_in_progress - self._in_progress
            for frames in await requests.receive(min(RECEIVE_BURST, free)):
                self._in_progress += 1
                task = asyncio.create_task(self._serve(requests, frames, admin))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _serve(self, requests: LoopSocket, frames: list[bytes], admin: bool) -> None:
        try:
            routing, raw = frames[:-1], frames[-1]
            reply, events = await self._dispatch(raw, admin)
            if reply is not None:
                # A ROUTER never blocks a send: past a peer's high-water mark it drops.
                requests.send_now([*routing, dumps(reply)])
            await self._publish(events)
        except Exception:
            logger.exception("failed to serve a request")
        finally:
            self._in_progress -= 1
            self._slot_freed.set()

    async def _dispatch(self, raw: bytes, admin: bool = False) -> tuple[dict | None, list]:
        try:
            body = loads(raw)
            op = body["op"]
        except (ValueError, KeyError, TypeError):
            logger.warning("dropping a malformed envelope of {} bytes", len(raw))
            return None, []
        rid = body.get("rid")
        deadline = body.get("deadline_ms")
        if isinstance(deadline, int) and deadline < time.time() * 1000:
            # The edge has already answered service_unavailable; doing it now could
            # only surprise the user (e.g. a late duplicate write).
            logger.info("dropping request {} for {}: its deadline passed", rid, op)
            return None, []
        if op == PING_OP:
            return reply_ok(rid, self._health()), []
        ctx = RequestContext.from_envelope(body)
        handler = self.handlers.get(op)
        if handler is not None and op.startswith(ADMIN_OP_PREFIX) != admin:
            logger.warning("refused {} on the {} path", op, "admin" if admin else "ordinary")
            err = ServiceError(
                ErrorCode.FORBIDDEN,
                "operator ops need the admin key (chatroom admin)"
                if not admin
                else "the admin path serves operator ops only",
            )
            return reply_error(rid, err.to_dict()), []
        if handler is None:
            err = ServiceError(ErrorCode.UNKNOWN_OP, f"{self.name} has no op '{op}'")
            return reply_error(rid, err.to_dict()), []
        meter = self._meter
        started = time.perf_counter()
        with request_context(op=op, rid=rid, user=ctx.user_id):
            try:
                result = await self._run_with_retry(handler, ctx, body.get("args") or {})
                self.handled += 1
                meter.ok(op, time.perf_counter() - started)
                return reply_ok(rid, result), ctx.events
            except DeadlinePassed:
                logger.info("dropping request {} for {}: its deadline passed in the queue", rid, op)
                meter.failed(op, "expired", time.perf_counter() - started)
                return None, []
            except ServiceError as exc:
                logger.info("{} refused: {}", op, exc.code)
                meter.failed(op, exc.code, time.perf_counter() - started)
                return reply_error(rid, exc.to_dict()), []
            except OperationalError as exc:
                logger.error("{} failed: database unavailable ({})", op, exc.orig)
                meter.failed(op, ErrorCode.SERVICE_UNAVAILABLE, time.perf_counter() - started)
                return reply_error(rid, database_unavailable().to_dict()), []
            except Exception as exc:
                self._log_crash(op, exc)
                meter.failed(op, ErrorCode.INTERNAL, time.perf_counter() - started)
                return reply_error(rid, internal_error().to_dict()), []

    def _log_crash(self, op: str, exc: Exception) -> None:
        """A bug: its traceback, but only the first per (op, exception type) a minute."""
        kind = type(exc).__name__
        log, left_out = self._crashes.should_log((op, kind), time.monotonic())
        if not log:
            logger.debug("{} crashed again ({}); traceback left out", op, kind)
            return
        more = f" ({left_out} more like it in the last minute, not shown)" if left_out else ""
        logger.opt(exception=exc).error("{} crashed{}", op, more)

    async def _repeat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(job.interval_s)
            ctx = RequestContext(op=f"job:{job.name}", rid=f"{self.replica}:{job.name}")
            try:
                await self._run_blocking(lambda c, _a: job.run(c), ctx, {})
            except Exception:
                logger.exception("job {} failed", job.name)
                continue
            await self._publish(ctx.events)

    async def _publish(self, events: list[tuple[bytes, dict[str, Any]]]) -> None:
        for topic, event in events:
            frames = event_frames(topic, event, self._stamps.next())
            self._replay.keep(event, frames)
            try:
                self._pub_now.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:  # not expected of PUB; never drop an event for it
                await self._pub.send_multipart(frames)

    async def _run_with_retry(self, handler: Handler, ctx: RequestContext, args: dict) -> Any:
        """Run a handler; when the database chose its transaction as a deadlock victim
        (or it waited too long for a lock), run it again: the transaction was rolled
        back whole, and its events are only published after success."""
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                if inspect.iscoroutinefunction(handler):
                    return await handler(ctx, args)
                return await self._run_blocking(handler, ctx, args)
            except OperationalError as exc:
                if not is_lock_conflict(exc) or attempt == DEADLOCK_ATTEMPTS:
                    raise
                logger.warning("{} hit a lock conflict; retrying (attempt {})", ctx.op, attempt)
                ctx.events.clear()
                await asyncio.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    async def _run_blocking(self, handler: Handler, ctx: Any, args: dict) -> Any:
        # copy_context carries the request's log context into the worker thread.
        call = functools.partial(
            contextvars.copy_context().run, start_unless_expired, handler, ctx, args
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _health(self) -> dict[str, Any]:
        return {"service": self.name, "replica": self.replica, "handled": self.handled}

    async def _serve_health(self, zctx: zmq.asyncio.Context) -> None:
        """Answer container health checks on 127.0.0.1 (this replica, not any replica).
        Ready (``ping``, the default): the event loop answers, the thread pool runs, the
        database answers. Alive (``live``): the event loop answers - nothing else, so a
        database outage takes replicas out of service without getting them restarted.
        A ROUTER, not a REP: a liveness probe must not queue behind a readiness check
        that hangs on the database; concurrent readiness checks share one round trip."""
        router = zctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(f"tcp://127.0.0.1:{self.settings.health_port}")
        ready_check: asyncio.Task | None = None
        answers: set[asyncio.Task] = set()

        async def answer(envelope: list[bytes], check: asyncio.Task | None) -> None:
            reply = {"ok": True, "live": True, **self._health()}
            if check is not None:
                reply = await check
            await router.send_multipart([*envelope, dumps(reply)])

        try:
            while True:
                *envelope, request = await router.recv_multipart()
                check = None
                if request != HEALTH_LIVE:
                    if ready_check is None or ready_check.done():
                        ready_check = asyncio.create_task(self._check_ready())
                    check = ready_check
                task = asyncio.create_task(answer(envelope, check))
                answers.add(task)
                task.add_done_callback(answers.discard)
        finally:
            for task in answers:
                task.cancel()
            router.close()

    async def _check_ready(self) -> dict[str, Any]:
        try:
            if self.health_check is not None:
                check = functools.partial(_call_check, self.health_check)
                await self._run_blocking(check, None, {})
            return {"ok": True, **self._health()}
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _call_check(check: Callable[[], None], _ctx: object, _args: object) -> None:
    check()


def run_service(name: str, settings: Settings, service: Service) -> None:
    # Worker threads mostly wait for the database and then need the GIL for a moment.
    # With the default 5 ms switch interval each such hand-over can cost up to 5 ms while
    # another thread runs Python; a request makes several, so shorter slices cut latency.
    sys.setswitchinterval(0.0005)
    # What start-up built (modules, SQLAlchemy metadata) lives for the whole run: frozen,
    # it is no longer walked by every full collection (those took 20-40 ms in social).
    gc.collect()
    gc.freeze()
    runtime = ServiceRuntime(name, settings, service)
    event_loop.run(runtime.run())
