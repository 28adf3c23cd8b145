"""LoopSocket (chatroom/zmq_io.py): real libzmq sockets over TCP on 127.0.0.1.

libzmq's descriptor is edge-triggered: its signal that a message came can be used up by
another operation on the socket. These tests make that happen on purpose, at the point
where a receive is already waiting, and check the receive still gets the message.
"""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
import zmq

from chatroom.zmq_io import LoopSocket

TIMEOUT_S = 5.0

try:
    import uvloop
except ImportError:  # not on Windows; the services then run on asyncio's own loop
    uvloop = None


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Run a scenario on asyncio's loop and on uvloop (what the services run on)."""
    if request.param == "asyncio":
        return asyncio.run
    if uvloop is None:
        pytest.skip("uvloop is not installed here")
    return uvloop.run


@asynccontextmanager
async def dealer_and_router(recheck_s: float) -> AsyncIterator[tuple[LoopSocket, zmq.Socket]]:
    """Our DEALER (a LoopSocket) connected to a plain ROUTER peer, greeted once so the
    peer knows its identity; yields (ours, peer) and the peer's view of our identity in
    `ours.peer_identity`."""
    ctx = zmq.Context()
    peer = ctx.socket(zmq.ROUTER)
    port = peer.bind_to_random_port("tcp://127.0.0.1")
    raw = ctx.socket(zmq.DEALER)
    raw.connect(f"tcp://127.0.0.1:{port}")
    ours = LoopSocket(raw, recheck_s=recheck_s)
    try:
        ours.send_now([b"hello"])
        assert peer.poll(int(TIMEOUT_S * 1000)), "the peer never heard the greeting"
        identity, greeting = peer.recv_multipart()
        assert greeting == b"hello"
        ours.peer_identity = identity  # type: ignore[attr-defined]
        yield ours, peer
    finally:
        if not ours._stopped:
            ours.stop()
        raw.close(linger=0)  # nothing if the test closed it
        peer.close(linger=0)
        ctx.term()


@contextmanager
def another_router(ctx: zmq.Context) -> Iterator[str]:
    """An endpoint to connect to (a bus that moved), for as long as the block runs."""
    spare = ctx.socket(zmq.ROUTER)
    try:
        yield f"tcp://127.0.0.1:{spare.bind_to_random_port('tcp://127.0.0.1')}"
    finally:
        spare.close(linger=0)


async def parked(ours: LoopSocket, limit: int = 10) -> asyncio.Task[list[list[bytes]]]:
    """A receive that has found nothing and is waiting on the descriptor."""
    receive = asyncio.create_task(ours.receive(limit))
    deadline = time.monotonic() + TIMEOUT_S
    while ours._waiter is None:
        assert time.monotonic() < deadline, "the receive never started waiting"
        await asyncio.sleep(0)
    return receive


def signalled(ours: LoopSocket, timeout_s: float) -> bool:
    """Whether libzmq signals the descriptor within `timeout_s` (the loop is not run, so
    nothing of ours reads the socket meanwhile)."""
    readable, _, _ = select.select([ours._fd], [], [], timeout_s)
    return bool(readable)


async def message_signal_used_up(ours: LoopSocket, peer: zmq.Socket, use_up: Callable) -> None:
    """The peer sends; once libzmq has signalled it, `use_up` runs an operation on our
    socket that processes libzmq's pending commands, which clears the signal."""
    peer.send_multipart([ours.peer_identity, b"reply"])  # type: ignore[attr-defined]
    assert signalled(ours, TIMEOUT_S), "libzmq never signalled the reply"
    deadline = time.monotonic() + TIMEOUT_S
    while signalled(ours, 0):
        # A send processes commands at most once a millisecond or so (libzmq's
        # throttle), so it is repeated until the signal is gone.
        assert time.monotonic() < deadline, "the operation never used up the signal"
        use_up()
        time.sleep(0.002)


def test_a_receive_takes_what_is_queued_in_one_burst_up_to_its_limit(run):
    async def scenario() -> None:
        ctx = zmq.Context()
        # inproc: a message is in our queue as soon as the peer's send returns.
        ours_raw, peer = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        ours_raw.bind("inproc://burst")
        peer.connect("inproc://burst")
        ours = LoopSocket(ours_raw, recheck_s=60)
        try:
            for i in range(5):
                peer.send(b"%d" % i)
            assert await asyncio.wait_for(ours.receive(3), TIMEOUT_S) == [[b"0"], [b"1"], [b"2"]]
            assert await asyncio.wait_for(ours.receive(3), TIMEOUT_S) == [[b"3"], [b"4"]]
            peer.send(b"later")  # after a wait: the reader wakes the receive
            later = asyncio.create_task(ours.receive(3))
            assert await asyncio.wait_for(later, TIMEOUT_S) == [[b"later"]]
        finally:
            ours.stop()
            ours_raw.close(linger=0)
            peer.close(linger=0)
            ctx.term()

    run(scenario())


def test_a_check_queued_by_a_send_does_not_touch_the_socket_after_stop(run):
    """The owner stops the LoopSocket and closes the socket in the same loop pass as a
    send: the check that send queued must not run on the closed socket."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        async with dealer_and_router(recheck_s=60) as (ours, _peer):
            receive = await parked(ours)
            ours.send_now([b"last words"])  # queues a check of the socket
            ours.stop()
            ours.sock.close(linger=0)
            receive.cancel()  # after the queued check: it would run first
            await asyncio.gather(receive, return_exceptions=True)
        assert errors == []

    run(scenario())


def test_a_loop_socket_refuses_a_zmq_asyncio_socket(run):
    async def scenario() -> None:
        import zmq.asyncio

        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.DEALER)
        try:
            with pytest.raises(TypeError, match="plain zmq.Socket"):
                LoopSocket(sock)
        finally:
            sock.close(linger=0)
            ctx.term()

    run(scenario())


def test_our_send_while_a_receive_waits_does_not_hide_the_message_that_came(run):
    """The receive waits; a message comes; before the loop looks, our own send uses up
    the descriptor's signal. The watchdog is set far beyond the test's timeout, so only
    the check made after our sends can wake the receive."""

    async def scenario() -> None:
        async with dealer_and_router(recheck_s=600) as (ours, peer):
            receive = await parked(ours)
            await message_signal_used_up(ours, peer, lambda: ours.send_now([b"more"]))
            assert await asyncio.wait_for(receive, TIMEOUT_S) == [[b"reply"]]

    run(scenario())


def test_a_signal_used_up_outside_the_loop_socket_is_found_by_the_watchdog(run):
    """A connect (BusLinks following a bus that moved) also processes the commands; the
    LoopSocket does not see it, so its watchdog finds the message, within its period."""

    async def scenario() -> None:
        async with dealer_and_router(recheck_s=0.05) as (ours, peer):
            receive = await parked(ours)
            with another_router(peer.context) as elsewhere:
                await message_signal_used_up(ours, peer, lambda: ours.sock.connect(elsewhere))
            assert await asyncio.wait_for(receive, TIMEOUT_S) == [[b"reply"]]

    run(scenario())


def test_without_the_watchdog_such_a_message_would_wait(run):
    """The case above is real: with the watchdog out of reach, the message stays unseen
    (so the test above passes because of the watchdog, not by luck)."""

    async def scenario() -> None:
        async with dealer_and_router(recheck_s=600) as (ours, peer):
            receive = await parked(ours)
            with another_router(peer.context) as elsewhere:
                await message_signal_used_up(ours, peer, lambda: ours.sock.connect(elsewhere))
            done, _ = await asyncio.wait({receive}, timeout=0.5)
            assert not done, "the receive woke without any signal"
            ours._check()  # what the watchdog does
            assert await asyncio.wait_for(receive, TIMEOUT_S) == [[b"reply"]]

    run(scenario())


def test_stopping_takes_the_reader_off_the_loop(run):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with dealer_and_router(recheck_s=60) as (ours, _peer):
            fd = ours._fd
            ours.stop()
            assert not loop.remove_reader(fd)  # nothing left registered

    run(scenario())
