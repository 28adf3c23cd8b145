"""Acknowledged messages under faults: the client's documented retry, and the checks
over a reader's view (tests/test_bus_failover.py, tests/test_galera.py).

The sender sends one lobby message at a time and, as a client does, sends it again with
the same client_id when the answer is service_unavailable or does not come
(docs/architecture.md). Every acknowledged message must then reach each reader live
exactly once, in the order sent, and `sync` from the start must return each once, in
seq order.
"""

from __future__ import annotations

import time
from typing import Any

from wire import WireClient

REQUEST_TIMEOUT_MS = 2000  # the edge's, in these stacks: a send's attempt lasts about this
SEND_ATTEMPTS = 6  # of one message, by the client: each up to the edge's timeout
RETRY_PAUSE_S = 0.25  # before the second attempt after service_unavailable; doubling


def send_with_retry(
    sender: WireClient, n: int, reply_timeout_s: float = REQUEST_TIMEOUT_MS / 1000 + 2
) -> tuple[dict[str, Any], int, float]:
    """Message n to the lobby: the stored message, how many sends it took, how long.
    An attempt is given up (and sent again) after `reply_timeout_s` without an answer:
    a little more than the edge's request timeout."""
    started = time.monotonic()
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            reply = sender.request(
                "room.send",
                timeout=reply_timeout_s,
                room="lobby",
                text=f"m{n}",
                client_id=f"c{n}",
            )
        except TimeoutError:
            continue
        if reply["ok"]:
            return reply["message"], attempt, time.monotonic() - started
        assert reply["error"]["code"] == "service_unavailable", reply
        # "Retry later" (docs/protocol.md): a client backs off a little more each time.
        time.sleep(min(RETRY_PAUSE_S * 2 ** (attempt - 1), 2.0))
    raise AssertionError(f"m{n} was not acknowledged in {SEND_ATTEMPTS} attempts")


def live_messages(reader: WireClient, timeout: float) -> list[dict[str, Any]]:
    """Every lobby message push the reader has got, once nothing more comes."""
    got = []
    while True:
        try:
            frame = reader.event("message", timeout=timeout)
        except TimeoutError:
            return got
        if frame.get("room") == "lobby":
            got.append(frame)


def synced(reader: WireClient) -> list[dict[str, Any]]:
    """Every lobby message from the start, through sync's pages."""
    messages: list[dict[str, Any]] = []
    cursors: dict[str, int] = {}
    for _ in range(100):
        reply = reader.call("sync", cursors=cursors, limit=200)
        for conversation in reply["conversations"]:
            if conversation["name"] == "lobby":
                messages += conversation["messages"]
                cursors[str(conversation["id"])] = conversation["messages"][-1]["seq"]
        if not reply["has_more"]:
            return messages
    raise AssertionError("sync did not end")


def check_view(reader: WireClient, acked: list[dict[str, Any]]) -> None:
    """Every acknowledged message (`acked`, in the order sent: m0, m1, ...) reached the
    reader live once, in order, and its sync returns each once, in seq order."""
    live = live_messages(reader, timeout=3)
    ids = [m["id"] for m in live]
    assert len(ids) == len(set(ids)), f"{reader.user}: a message pushed twice"
    assert ids == [m["id"] for m in acked], "live delivery lost or reordered one"
    stored = synced(reader)
    assert [m["id"] for m in stored] == [m["id"] for m in acked]
    seqs = [m["seq"] for m in stored]
    assert seqs == sorted(set(seqs))
    assert [m["text"] for m in stored] == [f"m{n}" for n in range(len(acked))]
