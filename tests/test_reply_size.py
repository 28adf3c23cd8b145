"""sync, room.history and dm.history replies are bounded in bytes, not only in count:
a client that follows has_more gets every message exactly once, in frames it accepts."""

from __future__ import annotations

import pytest

from chatroom.config import Settings
from chatroom.framing import dumps

from wire import WireClient, befriend

MAX_REPLY_BYTES = Settings.max_reply_bytes
ENVELOPE_BYTES = 1024  # id, ok, has_more, the room's name: what is not messages
LOBBY_MESSAGES = 300
DIRECT_MESSAGES = 40
MOST_CALLS = 200  # a bound for the paging loops


def long_text(n: int) -> str:
    # 4,000 characters, each JSON-escaped to 6 bytes ("\u0001"): 24 KB per message.
    return f"{n:04d}" + "\x01" * 3996


def reply_of(client: WireClient, op: str, **fields) -> dict:
    reply = client.call(op, **fields)
    size = len(dumps(reply))  # the edge encodes the frame the same way
    assert size <= MAX_REPLY_BYTES + ENVELOPE_BYTES, f"{op} reply of {size} bytes"
    return reply


@pytest.fixture
def spammed(make_stack, db_url):
    """A lobby and a private conversation full of long control-character messages,
    written while the reader was offline (live, they would cut it as a slow reader)."""
    stack = make_stack(db_url)
    with WireClient(stack.port) as writer, WireClient(stack.port) as reader:
        writer.register_and_login("spammer")
        reader.register_and_login("reader")
        befriend(writer, reader)
        reader.call("logout")
        for n in range(LOBBY_MESSAGES):
            writer.call("room.send", room="lobby", text=long_text(n))
        for n in range(DIRECT_MESSAGES):
            writer.call("dm.send", to="reader", text=long_text(n))
    with WireClient(stack.port, timeout=30) as reader:
        login = reader.login("reader", "correct horse")
        assert login["limits"]["max_reply_bytes"] == MAX_REPLY_BYTES
        yield reader


def test_sync_from_zero_pages_by_bytes_and_misses_nothing(spammed):
    reader = spammed
    cursors: dict[str, int] = {}
    texts: dict[str, list[str]] = {}
    first = None
    for _ in range(MOST_CALLS):
        reply = reply_of(reader, "sync", cursors=cursors, limit=500)
        first = first or reply
        for conv in reply["conversations"]:
            key = conv["kind"]
            seqs = [m["seq"] for m in conv["messages"]]
            assert seqs == list(range(cursors.get(str(conv["id"]), 0) + 1, seqs[-1] + 1))
            texts.setdefault(key, []).extend(m["text"] for m in conv["messages"])
            cursors[str(conv["id"])] = seqs[-1]
        if not reply["has_more"]:
            break
    else:
        pytest.fail(f"sync still had more after {MOST_CALLS} calls")
    # The first reply was cut: the lobby in part, the private conversation left out.
    (lobby,) = first["conversations"]
    assert lobby["kind"] == "public" and lobby["has_more"] and first["has_more"]
    assert texts["public"] == [long_text(n) for n in range(LOBBY_MESSAGES)]
    assert texts["direct"] == [long_text(n) for n in range(DIRECT_MESSAGES)]


@pytest.mark.parametrize(
    ("op", "target", "count"),
    [
        ("room.history", {"room": "lobby"}, LOBBY_MESSAGES),
        ("dm.history", {"with": "spammer"}, DIRECT_MESSAGES),
    ],
)
def test_history_pages_back_by_bytes_and_misses_nothing(spammed, op, target, count):
    reader = spammed
    texts: list[str] = []
    before = None
    for _ in range(MOST_CALLS):
        page = {"before": before} if before else {}
        reply = reply_of(reader, op, limit=200, **target, **page)
        messages = reply["messages"]
        assert messages, "a page always has at least one message"
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        if before:
            assert seqs[-1] == before - 1  # the newest before `before`, none skipped
        texts[:0] = [m["text"] for m in messages]
        before = seqs[0]
        if not reply["has_more"]:
            break
    else:
        pytest.fail(f"{op} still had more after {MOST_CALLS} pages")
    assert texts == [long_text(n) for n in range(count)]
