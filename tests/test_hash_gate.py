"""The argon2 gate (services/auth/hashing.py) on its own: bounded hashes at once, a
slot kept for known devices, strangers refused fast once their queue is full."""

from __future__ import annotations

import asyncio

import pytest

from chatroom.errors import ServiceError
from chatroom.service import DeadlinePassed
from services.auth.hashing import HashGate


async def hold(gate: HashGate, known: bool, release: asyncio.Event, log: list[str], name: str):
    async with gate.slot(known, wait_s=5):
        log.append(name)
        await release.wait()


def test_strangers_cannot_take_the_known_devices_slot():
    async def scenario() -> None:
        gate = HashGate(slots=2, reserved=1, max_waiting=2)
        release = asyncio.Event()
        started: list[str] = []
        tasks = [
            asyncio.create_task(hold(gate, False, release, started, f"stranger{i}"))
            for i in range(3)
        ]
        await asyncio.sleep(0)  # a scheduling yield: let them all reach the gate
        assert started == ["stranger0"]  # one running, two queued
        with pytest.raises(ServiceError) as refused:
            async with gate.slot(False, wait_s=5):
                pass
        assert refused.value.code == "rate_limited"
        assert refused.value.extra["retry_after_ms"] == 2000
        owner = asyncio.create_task(hold(gate, True, release, started, "owner"))
        await asyncio.sleep(0)
        assert started == ["stranger0", "owner"]  # straight in, past the queue
        release.set()
        await asyncio.gather(*tasks, owner)
        assert sorted(started) == ["owner", "stranger0", "stranger1", "stranger2"]
        assert gate.running == 0 and gate.waiting_strangers == 0

    asyncio.run(scenario())


def test_a_wait_that_outlasts_its_time_is_refused():
    async def scenario() -> None:
        gate = HashGate(slots=1, reserved=0, max_waiting=5)
        release = asyncio.Event()
        holder = asyncio.create_task(hold(gate, True, release, [], "holder"))
        await asyncio.sleep(0)
        with pytest.raises(DeadlinePassed):  # the runtime drops it, logging why
            async with gate.slot(True, wait_s=0.05):
                pass
        assert gate.waiting_strangers == 0
        release.set()
        await holder

    asyncio.run(scenario())


def test_a_long_queue_is_served_in_order_and_gives_up_cleanly():
    """Thousands queued (a sign-in storm): served first come first served, each release
    waking the next one only; one that gives up on its wait leaves the queue and takes
    no slot with it."""

    async def scenario() -> None:
        gate = HashGate(slots=1, reserved=0, max_waiting=5000)
        served: list[int] = []

        async def sign_in(n: int) -> None:
            async with gate.slot(False, wait_s=30):
                served.append(n)
                await asyncio.sleep(0)

        first = asyncio.Event()
        holder = asyncio.create_task(hold(gate, False, first, [], "holder"))
        await asyncio.sleep(0)
        queued = [asyncio.create_task(sign_in(n)) for n in range(3000)]
        await asyncio.sleep(0)
        assert gate.waiting_strangers == 3000
        with pytest.raises(DeadlinePassed):  # one that cannot wait that long
            async with gate.slot(False, wait_s=0.01):
                pass
        assert gate.waiting_strangers == 3000
        first.set()
        await asyncio.gather(holder, *queued)
        assert served == list(range(3000))
        assert gate.running == 0 and gate.waiting_strangers == 0

    asyncio.run(scenario())


def test_at_least_one_slot_is_for_everyone():
    with pytest.raises(ValueError):
        HashGate(slots=1, reserved=1, max_waiting=1)


def test_strangers_guessing_at_once_cannot_keep_the_owner_out(make_stack, sqlite_url):
    """The attacker's run: 40 addresses guessing once each at once made 33 logins
    service_unavailable, the owner's too. Real argon2 cost here (64 MiB, 3 passes)."""
    import concurrent.futures

    from wire import WireClient

    stack = make_stack(
        sqlite_url,
        argon2_time_cost=3,
        argon2_memory_kib=65536,
        argon2_parallelism=4,
        argon2_concurrency=2,
        argon2_queue=4,
        request_timeout_ms=5000,
    )
    with WireClient(stack.port, timeout=30) as owner:
        owner.register_and_login("owner")  # 127.0.0.1 is now a known device of "owner"

    def guess(n: int) -> str:
        with WireClient(stack.port, timeout=30, source=f"127.0.0.{n + 2}") as c:
            reply = c.request("login", username=f"nobody{n}", password="wrong guess")
            return reply["error"]["code"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        guesses = [pool.submit(guess, n) for n in range(30)]
        with WireClient(stack.port, timeout=30) as owner:
            reply = owner.request("login", username="owner", password="correct horse")
        codes = [g.result(timeout=60) for g in guesses]
    assert reply["ok"], reply
    assert set(codes) <= {"bad_credentials", "rate_limited"}, codes
    assert "rate_limited" in codes, codes  # refused at once, not timed out
