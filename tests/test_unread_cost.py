"""What unread counts cost a login: one user in 50 conversations of 10,000 messages each
(the lobby, 39 group rooms, 10 direct chats; the messages from others), the session
opened as social opens it (store/sessions.py open_batch), with no markers (every count
stops at the cap), markers 10 from the end, and everything read. Also just the read
states (the part of the snapshot they add). Numbers go to var/unread-cost-<db>.json.

CHAT_UNREAD_COST_MESSAGES sets the messages per conversation (default 10,000)."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, update

from chatroom.protocol import UNREAD_CAP
from chatroom.storage.migrate import upgrade
from chatroom.storage.schema import LOBBY, messages, read_markers, rooms, users
from services.social.store import SocialStore
from services.social.store.sessions import Opening, open_batch

ROOT = Path(__file__).resolve().parents[1]
CONVERSATIONS = 50
DIRECT = 10
PER_CONVERSATION = int(os.environ.get("CHAT_UNREAD_COST_MESSAGES", "10000"))
ROUNDS = 7


def _populate(engine) -> list[tuple[int, int]]:
    """User 1 (the one logging in) and users 2..11 (the others); returns each of user
    1's conversations as (room id, last seq)."""
    with engine.begin() as conn:
        conn.execute(
            insert(users),
            [
                {
                    "id": i,
                    "username": f"u{i}",
                    "username_key": f"u{i}",
                    "password_hash": "-",
                    "disabled": False,
                    "created_at": 0,
                }
                for i in range(1, DIRECT + 2)
            ],
        )
    store = SocialStore(engine)
    store.ensure_lobby()
    store.ensure_profile(1)  # the lobby is empty yet: its marker stays at 0
    with store.transaction() as tx:
        room_ids = [tx.room_named(LOBBY).id]
        for n in range(CONVERSATIONS - DIRECT - 1):
            tx.create_group(f"room {n}", 1)
            room_ids.append(tx.room_named(f"room {n}").id)
        for peer in range(2, DIRECT + 2):
            room_ids.append(tx.create_direct(1, peer))
        tx.conn.execute(update(rooms).values(last_seq=PER_CONVERSATION))
    with engine.begin() as conn:
        for index, room_id in enumerate(room_ids):
            sender = 2 + index % DIRECT
            rows = [
                {
                    "room_id": room_id,
                    "seq": seq,
                    # One in ten from the user themselves: counted out.
                    "sender_id": 1 if seq % 10 == 0 else sender,
                    "text": "x" * 40,
                    "created_at": seq,
                }
                for seq in range(1, PER_CONVERSATION + 1)
            ]
            for start in range(0, len(rows), 5000):
                conn.execute(insert(messages), rows[start : start + 5000])
    return [(room_id, PER_CONVERSATION) for room_id in room_ids]


def _set_markers(engine, convs: list[tuple[int, int]], behind: int | None) -> None:
    with engine.begin() as conn:
        conn.execute(read_markers.delete())
        if behind is not None:
            conn.execute(
                insert(read_markers),
                [
                    {"user_id": 1, "room_id": r, "seq": last - behind, "updated_at": 0}
                    for r, last in convs
                ],
            )


def _timed(fn) -> dict[str, float]:
    fn()  # warm
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "min_ms": round(min(times), 2),
        "median_ms": round(statistics.median(times), 2),
        "max_ms": round(max(times), 2),
    }


def test_unread_counts_keep_a_login_cheap(db_url):
    engine = create_engine(db_url)
    try:
        upgrade(engine)
        convs = _populate(engine)
        store = SocialStore(engine)
        wanted = {1: [(r, last, None) for r, last in convs]}
        n = 0

        def login() -> dict:
            nonlocal n
            n += 1
            with store.transaction() as tx:
                (opened,) = open_batch(tx, [Opening(1, "edge-1", f"c{n}")])
            return opened.snapshot

        def read_states() -> None:
            with store.reading() as tx:
                tx.read_states(wanted)

        results = {}
        for case, behind in (("no_markers", None), ("10_behind", 10), ("all_read", 0)):
            _set_markers(engine, convs, behind)
            snapshot = login()
            entries = snapshot["rooms"] + snapshot["direct"]
            assert len(entries) == CONVERSATIONS
            if behind is None:
                assert all(e["unread"] == UNREAD_CAP and e["unread_capped"] for e in entries)
            else:
                assert all(e["unread"] == behind - behind // 10 for e in entries), entries[0]
            results[case] = {"login": _timed(login), "read_states": _timed(read_states)}
        backend = engine.dialect.name
        out = ROOT / "var" / f"unread-cost-{backend}.json"
        out.parent.mkdir(exist_ok=True)
        report = {
            "conversations": CONVERSATIONS,
            "messages_each": PER_CONVERSATION,
            "cap": UNREAD_CAP,
            **results,
        }
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report))
        # Generous bounds (a loaded CI machine; the fastest round is the least noisy):
        # the worst case is 50 capped counts, 50,050 index entries.
        assert results["no_markers"]["read_states"]["min_ms"] < 500, results
        assert results["all_read"]["read_states"]["min_ms"] < 50, results
    finally:
        engine.dispose()
