"""The edge's connection state machine (services/tcp_edge/core.py), without sockets:
bytes and clock readings in, actions out. The end-to-end tests (test_prelogin,
test_limits, test_bad_input, test_security) check the same rules through a real edge."""

from __future__ import annotations

import json
import struct

import pytest

from chatroom.bus_contract import room_topic, user_topic
from chatroom.framing import encode_frame
from chatroom.protocol import PRELOGIN_MAX_FRAME_BYTES, ErrorCode
from services.tcp_edge.core import (
    PRELOGIN_OUTBOUND_QUEUE_BYTES,
    Abort,
    Close,
    ConnectionCore,
    Limits,
    PauseReading,
    PreloginRead,
    ResumeReading,
    Send,
    Session,
    Start,
    Subscribe,
    Unsubscribe,
)

LIMITS = Limits(
    max_frame_bytes=1024 * 1024,
    max_inflight=2,
    outbound_queue_bytes=64 * 1024,
    login_timeout_s=10.0,
    idle_timeout_s=60.0,
)
WALL_S = 1_700_000_000.0


def core(now: float = 0.0) -> ConnectionCore:
    return ConnectionCore(LIMITS, now, wall_s=lambda: WALL_S)


def logged_in(now: float = 0.0) -> ConnectionCore:
    c = core(now)
    c.log_in(Session(7, "ann", 70, {3}))
    return c


def frame(**fields) -> bytes:
    return encode_frame(fields)


def sent(actions) -> list[dict]:
    """The frames the actions send, decoded."""
    out = []
    for action in actions:
        if isinstance(action, Send):
            data = action.frame
            while data:
                (n,) = struct.unpack(">I", data[:4])
                out.append(json.loads(data[4 : 4 + n]))
                data = data[4 + n :]
    return out


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


# --------------------------------------------------------------------------- bytes in

# name, logged in?, bytes, (error code | None), closes?
RECEIVE_CASES = [
    ("ping before login", False, frame(op="ping", id=1), None, False),
    ("not JSON", False, struct.pack(">I", 3) + b"{x}", ErrorCode.BAD_FRAME, False),
    ("not an object", False, struct.pack(">I", 2) + b"[]", ErrorCode.BAD_FRAME, False),
    ("not UTF-8", False, struct.pack(">I", 2) + b"\xff\xfe", ErrorCode.BAD_FRAME, False),
    ("length zero", False, b"\x00\x00\x00\x00", ErrorCode.BAD_FRAME, True),
    ("no id", False, frame(op="ping"), ErrorCode.BAD_REQUEST, False),
    ("unknown op", False, frame(op="drop.tables", id=1), ErrorCode.UNKNOWN_OP, False),
    ("bad field", True, frame(op="room.send", id=1, room="x"), ErrorCode.BAD_REQUEST, False),
    (
        "pre-login frame cap",
        False,
        struct.pack(">I", PRELOGIN_MAX_FRAME_BYTES + 1),
        ErrorCode.FRAME_TOO_LARGE,
        True,
    ),
    (
        "the same frame after login",
        True,
        struct.pack(">I", PRELOGIN_MAX_FRAME_BYTES + 1),
        None,
        False,
    ),
    (
        "above the frame cap after login",
        True,
        struct.pack(">I", LIMITS.max_frame_bytes + 1),
        ErrorCode.FRAME_TOO_LARGE,
        True,
    ),
    ("an HTTP request", False, b"GET / HTTP/1.1\r\n\r\n", ErrorCode.FRAME_TOO_LARGE, True),
]


@pytest.mark.parametrize(
    "name, is_logged_in, data, code, closes", RECEIVE_CASES, ids=[c[0] for c in RECEIVE_CASES]
)
def test_bytes_in(name, is_logged_in, data, code, closes):
    c = logged_in() if is_logged_in else core()
    actions = c.receive(data, now=1.0)
    replies = sent(actions)
    if code is None:
        assert all(r.get("ok", True) for r in replies), replies
    else:
        assert [r["error"]["code"] for r in replies] == [code]
    assert any(isinstance(a, Close) for a in actions) == closes
    assert c.closing == closes
    if closes:  # nothing more is read from a stream whose framing is lost
        assert c.receive(frame(op="ping", id=2), now=2.0) == []


def test_a_frame_error_says_before_login():
    actions = core().receive(b"\xff\xff\xff\xff", now=0.0)
    [reply] = sent(actions)
    assert reply["id"] is None and reply["error"]["message"].endswith("before login")
    assert actions[-1] == Close(ErrorCode.FRAME_TOO_LARGE)


def test_ping_is_answered_at_once_with_the_wall_clock():
    [reply] = sent(core().receive(frame(op="ping", id="p"), now=0.0))
    assert reply == {"id": "p", "ok": True, "time": int(WALL_S * 1000)}


def test_bytes_before_login_are_reported_to_the_budget():
    c = core()
    request = frame(op="login", id=1, token="t")
    # The header is read at once; the one payload byte is what is held.
    assert c.receive(request[:5], now=0.0) == [PreloginRead(held_bytes=1, completed=False)]
    assert c.receive(request[5:], now=0.0)[0] == PreloginRead(held_bytes=0, completed=True)
    assert not any(isinstance(a, PreloginRead) for a in logged_in().receive(request, 0.0))


def test_bad_request_names_the_field():
    [reply] = sent(logged_in().receive(frame(op="room.send", id=4, room="x", text=5), 0.0))
    assert reply["id"] == 4 and reply["error"]["field"] == "text"


# --------------------------------------------------------------------------- requests


def test_an_op_before_login_is_refused_when_its_turn_comes():
    c = core()
    assert sent(c.receive(frame(op="room.list", id=1), 0.0)) == []
    [reply] = sent(c.pump())
    assert (reply["id"], reply["error"]["code"]) == (1, ErrorCode.NOT_AUTHENTICATED)


def started(actions) -> list:
    return [a.request for a in actions if isinstance(a, Start)]


def test_requests_start_up_to_the_inflight_limit_then_reading_pauses():
    c = logged_in()
    c.receive(b"".join(frame(op="room.list", id=i) for i in range(4)), 0.0)
    actions = c.pump()
    assert kinds(actions) == ["Start", "Start", "PauseReading"]
    first, second = started(actions)
    assert [first.request_id, second.request_id] == [0, 1]
    actions = c.finished(first)
    assert kinds(actions) == ["Start"]  # 2 starts; 3 still waits
    [third] = started(actions)
    actions = c.finished(second)
    assert kinds(actions) == ["Start", "ResumeReading"]
    [fourth] = started(actions)
    assert c.finished(third) == [] and c.finished(fourth) == []
    assert c.inflight == 0


def test_a_login_is_a_barrier_for_requests_pipelined_after_it():
    c = core()
    c.receive(frame(op="login", id=1, token="t") + frame(op="room.list", id=2), 0.0)
    actions = c.pump()
    assert kinds(actions) == ["Start", "PauseReading"]  # room.list waits for the login
    c.log_in(Session(7, "ann", 70, set()))
    actions = c.finished(*started(actions))
    assert kinds(actions) == ["Start", "ResumeReading"]  # now it runs as ann
    assert actions[0].request.op_name == "room.list"


def test_sends_to_one_conversation_start_one_after_another():
    """Pipelined sends to a room (however its name is spelt) and to a friend: each
    starts when the one before to the same place is answered; other places, and other
    ops, do not wait."""
    c = ConnectionCore(Limits(1024 * 1024, 8, 64 * 1024, 10.0, 60.0), 0.0, wall_s=lambda: WALL_S)
    c.log_in(Session(7, "ann", 70, {3}))
    requests = [
        frame(op="room.send", id=1, room="lobby", text="a"),
        frame(op="room.send", id=2, room=" LOBBY", text="b"),
        frame(op="dm.send", id=3, to="bob", text="c"),
        frame(op="room.send", id=4, room="Lobby", text="d"),
        frame(op="dm.send", id=5, to="Bob", text="e"),
        frame(op="room.history", id=6, room="lobby"),
    ]
    c.receive(b"".join(requests), 0.0)
    running = started(c.pump())
    assert [r.request_id for r in running] == [1, 3, 6]
    assert c.inflight == 6  # the waiting ones hold their places in the limit
    assert [r.request_id for r in started(c.finished(running[0]))] == [2]
    assert [r.request_id for r in started(c.finished(running[1]))] == [5]
    assert started(c.finished(running[2])) == []
    assert [r.request_id for r in c.ordered[("room", "lobby")]] == [4]  # behind 2


def test_a_closing_connection_starts_no_waiting_send():
    c = logged_in()
    c.receive(b"".join(frame(op="room.send", id=i, room="lobby", text="x") for i in range(2)), 0.0)
    [first] = started(c.pump())
    c.lost()
    assert started(c.finished(first)) == []
    assert c.inflight == 0 and not c.ordered


def test_stop_reading_drops_the_queue():
    c = logged_in()
    c.receive(b"".join(frame(op="room.list", id=i) for i in range(3)), 0.0)
    c.pump()
    assert c.stop_reading() == [PauseReading()]
    assert not c.backlog


# --------------------------------------------------------------------------- timers

# name, logged in?, last byte at, now, closing code (None: stays open)
TIMER_CASES = [
    ("login in time", False, None, 9.9, None),
    ("login timeout", False, None, 10.1, ErrorCode.LOGIN_TIMEOUT),
    ("login timeout despite traffic", False, 10.0, 10.1, ErrorCode.LOGIN_TIMEOUT),
    ("logged in, quiet but in time", True, None, 59.9, None),
    ("idle timeout", True, None, 60.1, ErrorCode.IDLE_TIMEOUT),
    ("a ping keeps it open", True, 30.0, 89.9, None),
    ("idle after the last ping", True, 30.0, 90.1, ErrorCode.IDLE_TIMEOUT),
]


@pytest.mark.parametrize(
    "name, is_logged_in, last_byte, now, code", TIMER_CASES, ids=[c[0] for c in TIMER_CASES]
)
def test_timeouts(name, is_logged_in, last_byte, now, code):
    c = logged_in() if is_logged_in else core()
    if last_byte is not None:
        c.receive(frame(op="ping", id=1), last_byte)
    actions = c.expired(now)
    if code is None:
        assert actions == []
        return
    [goodbye] = sent(actions)
    assert goodbye["event"] == "closing" and goodbye["code"] == code and goodbye["message"]
    assert isinstance(actions[-1], Close) and c.closing
    assert c.expired(now + 100) == []  # said once


def test_logging_out_restarts_the_login_timeout_and_the_small_frames():
    c = logged_in(now=0.0)
    c.receive(frame(op="ping", id=1), now=100.0)
    c.log_out(now=100.0, unsent_bytes=0)
    assert c.expired(105.0) == []
    assert sent(c.expired(110.5))[0]["code"] == ErrorCode.LOGIN_TIMEOUT
    c = logged_in()
    c.log_out(now=0.0, unsent_bytes=0)
    big = struct.pack(">I", PRELOGIN_MAX_FRAME_BYTES + 1)
    assert sent(c.receive(big, 0.0))[0]["error"]["code"] == ErrorCode.FRAME_TOO_LARGE


# --------------------------------------------------------------------------- output


# name, state, unsent bytes, cut?
SLOW_READER_CASES = [
    ("logged in, nothing queued", "in", 0, False),
    ("logged in, at the cap", "in", LIMITS.outbound_queue_bytes, False),
    ("logged in, over the cap", "in", LIMITS.outbound_queue_bytes + 1, True),
    ("before login, at its small cap", "out", PRELOGIN_OUTBOUND_QUEUE_BYTES, False),
    ("before login, over it", "out", PRELOGIN_OUTBOUND_QUEUE_BYTES + 1, True),
    # Logged out with 100,000 bytes queued: those may drain, 16 KiB more may pile up.
    ("logged out, draining", "logged out", 100_000 + PRELOGIN_OUTBOUND_QUEUE_BYTES, False),
    ("logged out, piling up", "logged out", 100_001 + PRELOGIN_OUTBOUND_QUEUE_BYTES, True),
]


@pytest.mark.parametrize(
    "name, state, unsent, cut", SLOW_READER_CASES, ids=[c[0] for c in SLOW_READER_CASES]
)
def test_slow_reader_cap(name, state, unsent, cut):
    c = core() if state == "out" else logged_in()
    if state == "logged out":
        c.log_out(now=0.0, unsent_bytes=100_000)
    assert c.wrote(unsent) == ([Abort("slow reader")] if cut else [])
    assert c.closing == cut


def test_goodbye_then_nothing_more():
    c = logged_in()
    actions = c.goodbye(ErrorCode.SHUTTING_DOWN, "restarting")
    assert kinds(actions) == ["Send", "Close"]
    assert sent(actions)[0]["code"] == ErrorCode.SHUTTING_DOWN
    assert c.goodbye(ErrorCode.KICKED, "again") == [] and c.close() == []
    assert c.wrote(10**9) == []  # already closing: no abort on top


# --------------------------------------------------------------------------- session


def test_a_session_subscribes_to_its_user_and_rooms_and_unsubscribes_at_the_end():
    c = core()
    actions = c.log_in(Session(7, "ann", 70, {3, 4}))
    assert set(actions) == {
        Subscribe(user_topic(7)),
        Subscribe(room_topic(3)),
        Subscribe(room_topic(4)),
    }
    assert c.join_room(5) == [Subscribe(room_topic(5))]
    assert c.join_room(5) == []
    assert c.leave_room(3) == [Unsubscribe(room_topic(3))]
    assert c.leave_room(3) == []
    assert set(c.end_session()) == {
        Unsubscribe(user_topic(7)),
        Unsubscribe(room_topic(4)),
        Unsubscribe(room_topic(5)),
    }
    assert c.session is None and c.end_session() == []
    assert c.join_room(6) == []  # no session, nothing to hear


def test_actions_are_values():
    assert ResumeReading() == ResumeReading() and Send(b"x") == Send(b"x")
