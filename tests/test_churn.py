"""Waves of logins and logouts must not deafen an edge.

Subscriptions travel from the edge to the bus as ZeroMQ messages. With libzmq's default
limit of 1,000 queued messages some were silently dropped under churn, and the edge never
heard the lobby again (found by the big-room benchmark: the third wave of 1,000 users got
nothing). Runs on MariaDB, where it reproduced reliably before the fix.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from loadtest.aclient import AsyncChat

from conftest import MYSQL_URL, _mysql_database

WAVE = 1000
WAVES = 3


@pytest.mark.timeout(400)
def test_lobby_still_heard_after_waves_of_logins_and_logouts(make_stack):
    if not MYSQL_URL:
        pytest.skip("CHAT_TEST_MYSQL_URL is not set")
    databases = _mysql_database()
    stack = make_stack(next(databases))

    async def wave(tag: str) -> None:
        got: set[int] = set()
        clients = []
        for i in range(WAVE):

            def on_event(event: dict, _now: int, who: int = i) -> None:
                if event.get("event") == "message":
                    got.add(who)

            client = AsyncChat(on_event)
            await client.connect("127.0.0.1", stack.port)
            await client.register_login(f"{tag}{i}", "correct horse")
            clients.append(client)
        sender = AsyncChat()
        await sender.connect("127.0.0.1", stack.port)
        await sender.register_login(f"{tag}-sender", "correct horse")
        await asyncio.sleep(0.5)
        await sender.call("room.send", room="lobby", text=f"wave {tag}")
        deadline = time.monotonic() + 10
        while len(got) < WAVE and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for client in [*clients, sender]:
            await client.close()
        assert len(got) == WAVE, f"wave {tag}: only {len(got)} of {WAVE} heard the lobby"

    try:
        for number in range(WAVES):
            asyncio.run(wave(f"w{number}-"))
    finally:
        stack.stop()
        next(databases, None)
