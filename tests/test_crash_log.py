"""A request that crashes a handler over and over logs one traceback a minute per
(op, exception type), not one per request."""

from __future__ import annotations

import asyncio
import io

from loguru import logger

from chatroom.config import Settings
from chatroom.framing import dumps
from chatroom.logs import RepeatedErrors
from chatroom.runtime import ServiceRuntime
from chatroom.service import Service


def test_repeated_errors_window_and_count():
    crashes = RepeatedErrors(window_s=60)
    assert crashes.should_log(("room.send", "KeyError"), now=0.0) == (True, 0)
    assert [crashes.should_log(("room.send", "KeyError"), now=t)[0] for t in (1, 30, 59)] == [
        False
    ] * 3
    assert crashes.should_log(("room.send", "ValueError"), now=2.0) == (True, 0)  # other kind
    assert crashes.should_log(("sync", "KeyError"), now=3.0) == (True, 0)  # other op
    assert crashes.should_log(("room.send", "KeyError"), now=61.0) == (True, 3)


def test_a_crash_repeated_a_thousand_times_logs_one_traceback():
    def crash(ctx, args):
        raise KeyError(args["x"])

    runtime = ServiceRuntime("test", Settings(), Service({"boom": crash}))
    sink = io.StringIO()
    handler = logger.add(sink, level="DEBUG", backtrace=False, diagnose=False)
    request = dumps({"rid": "1", "op": "boom", "args": {"x": "y" * 20}})

    async def flood() -> list:
        return [await runtime._dispatch(request) for _ in range(1000)]

    try:
        replies = asyncio.run(flood())
    finally:
        logger.remove(handler)
    assert {reply["error"]["code"] for reply, _ in replies} == {"internal"}
    log = sink.getvalue()
    assert log.count("Traceback") == 1
    # 1,000 requests of ~50 bytes: a traceback once, then a short line each at DEBUG.
    assert len(log) < 150_000, len(log)
