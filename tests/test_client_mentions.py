"""Mentions, notification levels and read receipts in the desktop client, by clicks
(tests/clicks.py) in apps talking to real local services: a room's "Notifications"
menu decides which messages alert (all / mentions only / none), on both of the user's
devices; the mention badge and highlight; "Share read receipts" in the account settings
and the ✓ / ✓✓ on one's messages in a direct chat."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from client.conversations import SENT, dm_key, mentions_me, room_key  # noqa: E402
from client.widgets import CONTACT_ROLE  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    befriend,
    choose_menu_item,
    choose_notify_level,
    click,
    click_button,
    focus_window,
    open_conversation,
    open_settings,
    right_click_message,
    send,
    sign_in,
    sign_up,
    texts,
    wait,
)

LOBBY = room_key("lobby")


def _lobby_row(app) -> dict:
    rooms = app.main_window.side.rooms
    return next(
        rooms.item(n).data(CONTACT_ROLE)
        for n in range(rooms.count())
        if rooms.item(n).text() == "lobby"
    )


def _said(alice, bob, text: str) -> None:
    """alice sends `text` to the lobby; bob has it."""
    send(alice, text)
    wait(lambda: text in texts(bob, LOBBY), what=f"{text!r} arrived")


def test_notification_levels_by_click_on_both_devices(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob, bob2 = apps("alice"), apps("bob"), apps("bob-laptop")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "bob")
    sign_in(bob2, stack.port, "bob")
    for app in (bob, bob2):
        open_conversation(app, LOBBY)
    choose_notify_level(bob, "mentions")
    # The server keeps it: the other device follows, its header says so.
    wait(lambda: bob2.state.conversation(LOBBY).notify == "mentions", what="level pushed")
    for app in (bob, bob2):
        face = app.main_window.chat.notify.widget
        wait(lambda face=face: face.toolTip().startswith("Notifications: Mentions only"))
        assert face.text() == "🔔 Mentions"

    focus_window(alice.main_window)  # bob's windows are in the background now
    history = bob.main_window.notifier.history
    _said(alice, bob, "plain words")
    _said(alice, bob, "look @BOB")
    wait(lambda: ("alice mentioned you in #lobby", "look @BOB") in history)
    assert all(body != "plain words" for _title, body in history)
    # The mention: flagged by the server, counted in the badge, highlighted.
    message = bob.state.conversation(LOBBY).messages[-1]
    assert message["mentions"] == [bob.state.me["id"]] and mentions_me(message, bob.state.me)
    wait(lambda: _lobby_row(bob)["mentions"] == 1 and _lobby_row(bob)["unread"] == 2)
    assert _lobby_row(bob)["notify"] == "mentions"

    # None, chosen on the other device: not even a mention alerts, on either.
    choose_notify_level(bob2, "none")
    wait(lambda: bob.state.conversation(LOBBY).notify == "none", what="level pushed back")
    focus_window(alice.main_window)
    before = (len(history), len(bob2.main_window.notifier.history))
    _said(alice, bob, "@bob are you there")
    wait(lambda: "@bob are you there" in texts(bob2, LOBBY))
    assert (len(history), len(bob2.main_window.notifier.history)) == before
    wait(lambda: _lobby_row(bob)["mentions"] == 2)  # still counted: only the alert is off

    # All again: every message alerts.
    choose_notify_level(bob, "all")
    wait(lambda: bob2.state.conversation(LOBBY).notify == "all")
    focus_window(alice.main_window)
    _said(alice, bob, "anything at all")
    wait(lambda: ("alice in #lobby", "anything at all") in history)


def test_read_receipts_by_click_show_ticks(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "bob")
    befriend(alice, bob)
    for app in (alice, bob):
        settings = open_settings(app)
        assert not settings.share_receipts.isChecked()  # off until turned on
        click(settings.share_receipts)
        wait(lambda s=settings: "Read receipts are on" in s.message.text(), what="receipts on")
        assert app.state.read_receipts
        click_button(settings, "close")

    focus_window(alice.main_window)
    open_conversation(alice, dm_key("bob"))
    # What alice's screen paints, not only what it would paint: the ticks come from
    # bob's marker, not from the message, so a repaint is needed when only it moves.
    delegate = alice.main_window.chat.view.itemDelegate()
    painted: dict[int, str] = {}

    def ticks_painted(message: dict, ticks_of=delegate.ticks) -> str:
        painted[message.get("id")] = shown = ticks_of(message)
        return shown

    delegate.ticks = ticks_painted
    send(alice, "did you read this?")
    conv = alice.state.conversation(dm_key("bob"))
    first = wait(lambda: conv.messages and conv.messages[-1]["state"] == SENT and conv.messages[-1])
    ticks = alice.main_window.chat.ticks_of
    assert ticks(first) in ("", "✓")  # bob's marker not known yet, or before it
    wait(lambda: "did you read this?" in texts(bob, dm_key("alice")))
    wait(lambda: first["id"] in painted, what="alice's screen shows her message")

    focus_window(bob.main_window)  # bob looks: read.mark, then alice's receipt
    open_conversation(bob, dm_key("alice"))
    wait(lambda: ticks(first) == "✓✓", what="read tick")
    wait(lambda: painted.get(first["id"]) == "✓✓", what="alice's screen shows the read tick")

    focus_window(alice.main_window)  # bob is not looking any more
    send(alice, "and this one?")
    second = wait(lambda: conv.messages[-1]["state"] == SENT and conv.messages[-1])
    wait(lambda: "and this one?" in texts(bob, dm_key("alice")))
    assert (ticks(first), ticks(second)) == ("✓✓", "✓")
    wait(lambda: painted.get(second["id"]) == "✓", what="alice's screen shows one tick")

    # bob comes back to the chat he left open: only his marker moves, no message
    # changes, and alice's screen still shows it (a new-user trial saw ✓ stay until
    # a click in the window).
    focus_window(bob.main_window)
    wait(lambda: ticks(second) == "✓✓", what="the second read")
    wait(lambda: painted.get(second["id"]) == "✓✓", what="alice's screen shows it read")

    # alice deletes the message bob read: its tombstone shows no tick, the newer one
    # keeps its own.
    right_click_message(alice, "did you read this?")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message", yes=True)

    # (The edit or delete is a new version of the message, in its place.)
    def deleted_first() -> dict | None:
        return next((m for m in conv.messages if m["id"] == first["id"] and m.get("deleted")), None)

    tombstone = wait(deleted_first, what="the tombstone on alice's screen")
    assert (ticks(tombstone), ticks(second)) == ("", "✓✓")

    # bob stops sharing on his side: alice's app stops showing his marker at its next
    # sync (the server shows markers only between two who share).
    settings = open_settings(bob)
    click(settings.share_receipts)
    wait(lambda: "Read receipts are off" in settings.message.text())
    alice.state.sync()
    wait(lambda: ticks(second) == "", what="ticks gone")
