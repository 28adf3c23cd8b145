"""The media decode pool on its own (no sockets): one decode per user, a bounded queue,
no decode for a request whose edge has stopped waiting."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chatroom.errors import ServiceError
from chatroom.service import DeadlinePassed
from services.media.decoding import DecodePool

WAIT_S = 10


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT_S))


def test_a_second_upload_of_one_user_is_refused_while_the_first_decodes():
    async def scenario():
        pool = DecodePool(workers=1, queue_max=4)
        started, release = threading.Event(), threading.Event()

        def slow():
            started.set()
            release.wait(WAIT_S)
            return "first"

        first = asyncio.ensure_future(pool.run(1, None, slow))
        await asyncio.to_thread(started.wait, WAIT_S)
        with pytest.raises(ServiceError) as refused:
            await pool.run(1, None, lambda: "second")
        assert refused.value.code == "rate_limited"
        assert refused.value.extra["retry_after_ms"] > 0
        # Another user queues behind the decode slot and gets their turn.
        other = asyncio.ensure_future(pool.run(2, None, lambda: "other"))
        release.set()
        assert await first == "first" and await other == "other"
        assert await pool.run(1, None, lambda: "again") == "again"  # slot freed
        pool.close()

    run(scenario())


def test_a_full_queue_answers_service_unavailable():
    async def scenario():
        pool = DecodePool(workers=1, queue_max=1)
        release = threading.Event()
        busy = [
            asyncio.ensure_future(pool.run(u, None, lambda: release.wait(WAIT_S))) for u in (1, 2)
        ]
        await asyncio.sleep(0)  # both registered
        with pytest.raises(ServiceError) as refused:
            await pool.run(3, None, lambda: None)
        assert refused.value.code == "service_unavailable"
        release.set()
        await asyncio.gather(*busy)
        pool.close()

    run(scenario())


def test_an_upload_whose_deadline_passed_in_the_queue_is_not_decoded():
    decoded = []

    async def scenario():
        pool = DecodePool(workers=1)
        past_ms = int(time.time() * 1000) - 1
        with pytest.raises(DeadlinePassed):
            await pool.run(1, past_ms, lambda: decoded.append(1))
        pool.close()

    run(scenario())
    assert decoded == []
