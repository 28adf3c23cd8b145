"""Backend failures: the edge answers service_unavailable instead of hanging, and
recovers without a restart."""

from __future__ import annotations

import signal
import time

from wire import WireClient


def test_auth_killed_then_restarted(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, request_timeout_ms=1500)
    with WireClient(stack.port) as c:
        c.call("register", username="kate", password="password-1")
        stack.kill("auth")
        started = time.monotonic()
        err = c.error_of("login", username="kate", password="password-1")
        elapsed = time.monotonic() - started
        assert err["code"] == "service_unavailable"
        assert elapsed < 1.5 + 1.0, elapsed
        # Other traffic is unaffected meanwhile.
        assert c.call("ping")["ok"]
        stack.restart("auth")
        stack.wait_healthy(("auth",))
        assert c.call("login", username="kate", password="password-1")["user"]["username"] == "kate"


def test_paused_service_times_out(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, request_timeout_ms=1000)
    with WireClient(stack.port) as c:
        c.register_and_login("leo")
        stack.kill("social", signal.SIGSTOP)
        try:
            started = time.monotonic()
            err = c.error_of("room.history", room="lobby")
            assert err["code"] == "service_unavailable"
            assert time.monotonic() - started < 2.5
        finally:
            stack.kill("social", signal.SIGCONT)
        # After it resumes, the stale request is dropped (deadline passed) and new ones work.
        assert c.call("room.history", room="lobby")["ok"]


def test_edge_drains_on_sigterm(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        c.register_and_login("mia")
        stack.kill("edge#0", signal.SIGTERM)
        frames = c.wait_closed(timeout=10)
        assert any(f.get("event") == "closing" and f["code"] == "shutting_down" for f in frames)
    assert stack.procs["edge#0"].returncode == 0


def test_a_read_mark_waiting_for_its_batch_is_answered_before_the_edge_stops(
    make_stack, sqlite_url
):
    """The edge gathers read.marks (read_mark_linger_ms, here longer than the drain);
    on SIGTERM what is gathered goes to social at once, so the mark is committed and
    answered before the goodbye, not cut off by it."""
    stack = make_stack(sqlite_url, read_mark_linger_ms=60_000)
    with WireClient(stack.port) as c:
        c.register_and_login("mia")
        seq = c.call("room.send", room="lobby", text="read me")["message"]["seq"]
        c.send({"op": "read.mark", "id": 77, "room": "lobby", "seq": seq})
        c.no_event("closing", within=0.3)  # the mark is waiting in the edge
        stack.kill("edge#0", signal.SIGTERM)
        frames = c.wait_closed(timeout=10)
        (reply,) = [f for f in frames if f.get("id") == 77]
        assert reply["ok"] is True and reply["seq"] == seq and reply["unread"] == 0
        closing = next(i for i, f in enumerate(frames) if f.get("event") == "closing")
        assert frames.index(reply) < closing
    assert stack.procs["edge#0"].returncode == 0
