"""A client inside a host that is cut off from the others: does its side acknowledge
writes? (issue #18: "a minority side refuses writes rather than acknowledging them").

    ip netns exec NS python -m loadtest.minority EDGE_IP PORT NAME SECONDS

Run by the fault suite (loadtest/scenarios/hostfaults.py) in the namespace of the host it
is about to cut off, so that its connection to that host's edge survives the partition
(it never crosses the host's link). Before the cut: registers NAME, logs in and makes a
private room of its own (no member of the suite's load sees what is sent there), then
prints "ready". On a line on stdin ("go"): sends numbered messages to that room for
SECONDS, one at a time, each given up after a few seconds, and prints one JSON line:
how many it tried, which were acknowledged (their texts) and the errors of the rest
("code: message", so that the reason is seen: the database, not a bus timeout).
With a replicated database (chatroom/host_galera.py) the host's database node is a
minority of one and refuses writes, so nothing must be acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from loadtest.aclient import AsyncChat, ChatError, run_async

PASSWORD = "minority-probe-password"
SEND_TIMEOUT_S = 4.0
ROOM = "minority probe"


async def probe(host: str, port: int, name: str, seconds: float) -> dict[str, object]:
    chat = AsyncChat()
    await chat.connect(host, port)
    await chat.register_login(name, PASSWORD, timeout=20)
    await chat.call("room.create", 20, room=f"{ROOM} {name}", visibility="private")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    acknowledged: list[str] = []
    errors: dict[str, int] = {}
    tried = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = f"{name} minority #{tried}"
        tried += 1
        try:
            await chat.call(
                "room.send",
                SEND_TIMEOUT_S,
                room=f"{ROOM} {name}",
                text=text,
                client_id=f"{name}-{tried}",
            )
            acknowledged.append(text)
        except ChatError as exc:
            errors[str(exc)] = errors.get(str(exc), 0) + 1  # "code: message"
        except (TimeoutError, ConnectionError, OSError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            if chat.closed:
                break
        await asyncio.sleep(0.2)
    await chat.close()
    return {"tried": tried, "acknowledged": acknowledged, "errors": errors}


def main() -> None:
    host, port, name, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    print(json.dumps(run_async(probe(host, port, name, seconds))), flush=True)


if __name__ == "__main__":
    main()
