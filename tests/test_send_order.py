"""A connection's sends to one conversation are stored in the order they were sent, even
when they are all sent at once without waiting for a reply (pipelined), through real
processes, with two social replicas sharing the work (where the order could otherwise
come apart most easily: each replica takes every other request).

Found in CI: the first direct message to a friend looks the conversation up on a worker
thread while the ones behind it may find it cached, so ten sent at once were stored
1, 0, 2, ... The edge now starts each send only when the one before to the same place
is answered (services/tcp_edge/core.py, order_key).
"""

from __future__ import annotations

from wire import befriend, users, wait_until

TEN = 10


def _pipeline(client, op: str, **fields) -> list[dict]:
    """Send TEN requests back to back, then read the TEN replies (in any order)."""
    first = next(client.ids)
    for n in range(TEN):
        client.send(
            {"op": op, "id": first + 1000 + n, "text": f"m{n}", "client_id": f"c{n}", **fields}
        )
    replies = {}
    for _ in range(TEN):
        reply = client.next_matching(lambda f: "ok" in f and isinstance(f.get("id"), int))
        replies[reply["id"] - first - 1000] = reply
    assert all(replies[n]["ok"] for n in range(TEN)), replies
    return [replies[n]["message"] for n in range(TEN)]


def test_pipelined_sends_are_stored_in_the_order_sent(make_stack, db_url):
    stack = make_stack(db_url)
    stack.start_service("social#1")
    stack.wait_healthy(("social",))
    with users(stack, "ann", "bob", "cy") as (ann, bob, cy):
        befriend(ann, bob)
        # The first direct messages of the pair (the conversation is made by the first).
        stored = _pipeline(ann, "dm.send", to="bob")
        assert [m["seq"] for m in stored] == sorted(m["seq"] for m in stored)
        history = bob.call("dm.history", **{"with": "ann"})["messages"]
        assert [m["text"] for m in history] == [f"m{n}" for n in range(TEN)]
        pushed = [bob.event("message", text=f"m{n}") for n in range(TEN)]
        assert [p["seq"] for p in pushed] == sorted(p["seq"] for p in pushed)

        # The lobby, its name spelt two ways (one conversation all the same). Every other
        # message @mentions names social has not seen, which it looks up on a worker
        # thread; the plain ones need no lookup and would overtake them.
        ann.inbox.clear()
        first = next(ann.ids)
        texts = [f"r{n} @nobody{n}" if n % 2 == 0 else f"r{n}" for n in range(TEN)]
        for n, text in enumerate(texts):
            room = "lobby" if n % 2 else "LOBBY"
            ann.send({"op": "room.send", "id": first + n, "room": room, "text": text})
        wait_until(
            lambda: len(cy.call("room.history", room="lobby")["messages"]) >= TEN, 20,
            "the ten room messages",
        )  # fmt: skip
        stored = [m["text"] for m in cy.call("room.history", room="lobby")["messages"]]
        assert stored[-TEN:] == texts
