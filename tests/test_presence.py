"""Presence as friends see it: clients that vanish, and when a friend was last online."""

from __future__ import annotations

import time

from chatroom import config

from test_social import befriend
from wire import WireClient


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
    settings = config.load({})
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
