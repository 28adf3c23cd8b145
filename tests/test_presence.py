"""Presence as friends see it: clients that vanish, edges that die or freeze, when a friend
was last online, and who sees a status."""

from __future__ import annotations

import signal
import time

import pytest

from chatroom import config_env

from wire import WireClient, befriend, users


def wait_for_event(watcher: WireClient, name: str, timeout: float, **match) -> dict:
    """Wait for a push while pinging, so the watcher itself is not closed as idle."""
    deadline = time.monotonic() + timeout
    while True:
        watcher.call("ping")
        try:
            return watcher.event(name, timeout=0.25, **match)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def test_default_idle_timeout_shows_a_vanished_client_offline_within_a_minute():
    settings = config_env.load({})
    assert settings.idle_timeout_s <= 60
    assert settings.limits()["idle_timeout_s"] == int(settings.idle_timeout_s)


def test_client_that_stops_sending_is_shown_offline(make_stack, db_url):
    idle_timeout_s = 2
    stack = make_stack(db_url, idle_timeout_s=idle_timeout_s)
    with WireClient(stack.port) as gone, WireClient(stack.port) as friend:
        gone.register_and_login("lid-shut")
        friend.register_and_login("watcher")
        befriend(gone, friend)
        # `gone` sends nothing more and keeps its socket open, like a laptop whose lid
        # was shut: only the edge's idle timeout can notice.
        silent_since = time.monotonic()
        offline = wait_for_event(friend, "presence", timeout=10, online=False)
        took = time.monotonic() - silent_since
        assert offline["user"]["username"] == "lid-shut"
        # The sweep runs every second; the rest is the close reaching social.
        assert took < idle_timeout_s + 4, f"shown offline after {took:.1f} s"
        closing = gone.event("closing", timeout=5)
        assert closing["code"] == "idle_timeout"


def friend_entry(reply: dict, username: str) -> dict:
    (entry,) = [f for f in reply["friends"] if f["username"] == username]
    return entry


def test_friends_see_when_an_offline_friend_was_last_online(make_stack, db_url):
    stack = make_stack(db_url)
    with WireClient(stack.port) as ann, WireClient(stack.port) as ben:
        ann.register_and_login("ann")
        ben.register_and_login("ben")
        ann.call("friend.request", username="ben")
        accepted = ben.call("friend.accept", username="ann")
        assert accepted["friend"]["last_seen"] is None  # online
        assert ann.event("friend.accepted")["friend"]["last_seen"] is None
        assert friend_entry(ann.call("friend.list"), "ben")["last_seen"] is None

        before = time.time() * 1000
        ben.call("logout")
        after = time.time() * 1000
        offline = ann.event("presence", online=False)
        assert offline["user"]["username"] == "ben"
        seen = offline["last_seen"]
        assert isinstance(seen, int) and before <= seen <= after
        assert friend_entry(ann.call("friend.list"), "ben")["last_seen"] == seen
        with WireClient(stack.port) as ann_again:  # the login snapshot has it too
            assert friend_entry(ann_again.login("ann", "correct horse"), "ben")["last_seen"] == seen

        # Kept in the database, not in social's memory.
        stack.kill("social", signal.SIGTERM)
        stack.restart("social")
        stack.wait_healthy(("social",))
        assert friend_entry(ann.call("friend.list"), "ben")["last_seen"] == seen

        ben.login("ben", "correct horse")
        online = ann.event("presence", online=True)
        assert online["last_seen"] is None
        assert friend_entry(ann.call("friend.list"), "ben")["last_seen"] is None


def no_event(watcher: WireClient, name: str, seconds: float, **match) -> None:
    """Assert that no such push arrives within `seconds` (pinging meanwhile)."""
    try:
        event = wait_for_event(watcher, name, timeout=seconds, **match)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected push: {event}")


def test_no_presence_flap_after_social_stalls(make_stack, sqlite_url):
    """social frozen (SIGSTOP) for longer than the dead-edge timeout, then resumed:
    the edges kept heartbeating all along, so nobody is shown offline meanwhile."""
    stack = make_stack(sqlite_url, edge_heartbeat_s=0.5, edge_dead_after_s=2)
    with WireClient(stack.port) as ann, WireClient(stack.port) as ben:
        ann.register_and_login("stall-ann")
        ben.register_and_login("stall-ben")
        befriend(ann, ben)
        stack.kill("social", signal.SIGSTOP)
        deadline = time.monotonic() + 5  # 2.5 × the dead-edge timeout, frozen
        while time.monotonic() < deadline:
            ann.call("ping")  # answered by the edge: ann stays connected
            ben.call("ping")
            time.sleep(0.2)  # the clients' pace while time passes: the freeze is the test
        stack.kill("social", signal.SIGCONT)
        no_event(ann, "presence", seconds=4, online=False)
        assert ann.call("friend.list")["friends"][0]["online"] is True


def test_reap_gate_waits_for_fresh_heartbeats_after_a_stall():
    from services.social.presence import ReapGate

    gate = ReapGate(period_s=5, dead_after_s=15, now=95)
    assert gate.may_reap(now=100) and gate.may_reap(now=105)  # on time: judge
    assert not gate.may_reap(now=160)  # 55 s late: we were frozen
    assert not gate.may_reap(now=170)
    assert gate.may_reap(now=176)  # a dead-edge timeout later: judge again
    assert not gate.still_may_reap(started=180, now=200)  # frozen during a run
    assert not ReapGate(period_s=5, dead_after_s=15, now=0).may_reap(now=60)  # before the first


def test_killed_edge_users_go_offline_within_30s(make_stack, db_url):
    stack = make_stack(db_url, edges=2)
    with WireClient(stack.edge_ports[0]) as uma, WireClient(stack.edge_ports[1]) as vic:
        uma.register_and_login("uma")
        vic.register_and_login("vic")
        befriend(uma, vic)
        killed, killed_at_ms = time.monotonic(), time.time() * 1000
        stack.kill("edge#1")  # SIGKILL: no goodbye, no session.close
        offline = uma.event("presence", timeout=30)
        elapsed = time.monotonic() - killed
        assert offline["user"]["username"] == "vic" and offline["online"] is False
        assert elapsed < 30, elapsed
        # When the reaper dropped the edge's sessions: after the kill, before the push.
        assert killed_at_ms <= offline["last_seen"] <= time.time() * 1000
        (entry,) = uma.call("friend.list")["friends"]
        assert entry["online"] is False and entry["last_seen"] == offline["last_seen"]


@pytest.mark.timeout(120)
def test_paused_edge_presumed_dead_re_registers_its_sessions_once(make_stack, db_url):
    # An edge that stops heartbeating (paused, partitioned) is presumed dead: its users
    # go offline. When it comes back it sends social its whole session list; the users
    # come back online once each, with no flapping, and their sockets work throughout.
    stack = make_stack(db_url, edges=2, edge_heartbeat_s=1, edge_dead_after_s=3)
    with (
        WireClient(stack.edge_ports[0]) as uma,
        WireClient(stack.edge_ports[1]) as vic,
        WireClient(stack.edge_ports[1]) as wes,
    ):
        uma.register_and_login("uma")
        vic.register_and_login("vic")
        wes.register_and_login("wes")
        befriend(uma, vic)
        befriend(uma, wes)
        stack.kill("edge#1", signal.SIGSTOP)
        try:
            gone = {uma.event("presence", timeout=20, online=False)["user"]["username"]}
            gone.add(uma.event("presence", timeout=5, online=False)["user"]["username"])
            assert gone == {"vic", "wes"}
        finally:
            stack.kill("edge#1", signal.SIGCONT)
        back = {uma.event("presence", timeout=20, online=True)["user"]["username"]}
        back.add(uma.event("presence", timeout=5, online=True)["user"]["username"])
        assert back == {"vic", "wes"}
        uma.no_event("presence", within=4)  # later heartbeats agree: no second resync
        assert all(f["online"] for f in uma.call("friend.list")["friends"])
        vic.call("room.send", room="lobby", text="still here")
        assert uma.event("message")["text"] == "still here"
        logs = stack.logs("social")
        assert logs.count("resync: 2 sessions added, 0 removed") == 1, logs[-2000:]


@pytest.mark.parametrize("visibility", ["friends", "everyone"])
def test_status_is_shown_to_friends_only_unless_configured(make_stack, sqlite_url, visibility):
    stack = make_stack(sqlite_url, status_visibility=visibility)
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat):
        befriend(ann, bob)
        ann.call("presence.set", status="at the dentist")

        def status_seen_by(client: WireClient) -> str:
            members = client.call("room.members", room="lobby")["members"]
            return next(m["status"] for m in members if m["username"] == "ann")

        assert status_seen_by(ann) == "at the dentist"
        assert status_seen_by(bob) == "at the dentist"
        assert status_seen_by(cat) == ("at the dentist" if visibility == "everyone" else "")
        cat.no_event("presence", within=0.3)  # presence pushes only ever go to friends
