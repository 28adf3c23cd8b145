"""Messages in the desktop client: sending (Enter, the Send button, the length limit,
rate limits), older history, unread counts and notifications, and the keyboard (Ctrl+K,
Ctrl+F, Esc); clicked and typed as a person does (tests/clicks.py) in apps talking to
real local services (`apps`, tests/conftest.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from client.conversations import FAILED, SENT, dm_key, room_key  # noqa: E402
from client.dialogs import SwitcherDialog  # noqa: E402
from client.widgets import CONTACT_ROLE  # noqa: E402

from clicks import (  # noqa: E402
    PASSWORD,
    answer_text,
    befriend,
    choose_menu_item,
    click,
    click_button,
    dialog,
    focus_window,
    open_conversation,
    press,
    pump,
    right_click_message,
    send,
    shown,
    sign_in,
    sign_up,
    texts,
    type_into,
    wait,
)
from wire import WireClient  # noqa: E402

# ---------------------------------------------------------------------- messages


def test_send_by_enter_and_by_button(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "小明")
    send(alice, "hello lobby")
    wait(lambda: "hello lobby" in shown(bob))
    send(bob, "你好 😀 from 小明", by_button=True)
    wait(lambda: "你好 😀 from 小明" in shown(alice))
    sent = alice.state.conversation(room_key("lobby")).messages[-1]
    assert sent["state"] == SENT and sent["id"]
    assert alice.main_window.chat.compose.toPlainText() == ""
    # Two in a row by one sender: one header, the second grouped under it; a date line
    # above the first message of the day.
    send(alice, "and a second line")
    send(alice, "and a third")
    wait(lambda: "and a third" in shown(bob))
    layouts = bob.main_window.chat.model.layouts
    assert layouts[0].date == "Today" and layouts[0].header
    assert [layout.header for layout in layouts[-2:]] == [True, False]
    assert all(not layout.date for layout in layouts[1:])


def test_send_refused_by_server_is_marked_failed(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url, max_text_chars=10)
    app = apps("dora")
    sign_up(app, stack.port, "dora")
    # The window refuses an over-long text up front and says why.
    send(app, "y" * 11)
    assert "at most 10 characters" in app.main_window.chat.notice.text()
    assert app.main_window.chat.counter.text() == "11 / 10"


def test_rate_limited_sends_are_retried_when_the_server_says(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url, rate_message="2/2s")
    app = apps("quick")
    sign_up(app, stack.port, "quick")
    for i in range(5):
        send(app, f"fast {i}")
    conv = app.state.conversation(room_key("lobby"))
    wait(lambda: [m["state"] for m in conv.messages] == [SENT] * 5)
    assert sorted(texts(app, room_key("lobby"))) == [f"fast {i}" for i in range(5)]
    assert FAILED not in [m["state"] for m in conv.messages]


def test_older_history_loads_when_scrolled_to_top(apps, make_stack, sqlite_url):
    from wire import WireClient

    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as writer:
        writer.register_and_login("writer")
        for i in range(120):
            writer.call("room.send", room="lobby", text=f"old message {i}")
    app = apps("reader")
    sign_up(app, stack.port, "reader")
    wait(lambda: len(shown(app)) == 50)
    assert shown(app)[-1] == "old message 119"
    view = app.main_window.chat.view
    for expected in (100, 120):
        wait(lambda: view.verticalScrollBar().maximum() > 0)
        view.verticalScrollBar().setValue(0)  # the scroll a person does with the wheel
        wait(lambda expected=expected: len(shown(app)) == expected)
    assert shown(app) == [f"old message {i}" for i in range(120)]


# ---------------------------------------------------------------------- unread, alerts


def test_unread_counts_include_what_arrived_while_offline(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "bob")
    befriend(alice, bob)
    bob.main_window.close()  # bob quits the app (his kept session stays on his computer)
    wait(lambda: not alice.state.friends["bob"]["online"])

    open_conversation(alice, dm_key("bob"))
    for i in range(3):
        send(alice, f"while you were away {i}")
    open_conversation(alice, room_key("lobby"))
    send(alice, "lobby news")
    wait(lambda: all(m["state"] == SENT for m in alice.state.conversation(dm_key("bob")).messages))
    wait(lambda: alice.state.conversation(room_key("lobby")).messages[-1]["state"] == SENT)

    later = apps("bob")  # bob's computer, the app started again: the session resumes
    later.show()
    wait(lambda: later.main_window is not None and later.main_window.isVisible())
    wait(lambda: later.state.conversation(dm_key("alice")).unread == 3)
    assert later.main_window.windowTitle() == "ChatRoom (3)"
    # The DM row shows the last message as its preview and a badge.
    rows = later.main_window.side.friends
    wait(lambda: rows.item(0).data(CONTACT_ROLE)["subtitle"] == "while you were away 2")
    assert rows.item(0).data(CONTACT_ROLE)["unread"] == 3
    # The lobby's row previews its last message although nothing there is unread.
    wait(lambda: later.main_window.side.rooms.item(0).data(CONTACT_ROLE)["subtitle"])
    lobby_row = later.main_window.side.rooms.item(0).data(CONTACT_ROLE)
    assert lobby_row["subtitle"] == "alice: lobby news" and lobby_row["unread"] == 0
    # The lobby (open at start) is read; opening the DM reads it, and it stays read.
    open_conversation(later, dm_key("alice"))
    assert later.main_window.windowTitle() == "ChatRoom"
    assert shown(later)[-3:] == [f"while you were away {i}" for i in range(3)]


def test_notifications_while_the_window_is_not_focused(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "bob")
    alice.main_window.activateWindow()
    wait(lambda: not bob.main_window.isActiveWindow())
    click(alice.main_window.add_friend_button)
    answer_text("add_friend_dialog", "bob")
    wait(
        lambda: (
            ("Friend request", "alice wants to be your friend") in bob.main_window.notifier.history
        )
    )
    click_button(bob.main_window, "accept:alice")
    wait(lambda: "bob" in alice.state.friends)
    alice.main_window.activateWindow()
    wait(lambda: alice.main_window.isActiveWindow())
    open_conversation(alice, dm_key("bob"))
    send(alice, "psst")
    wait(lambda: ("alice", "psst") in bob.main_window.notifier.history)
    open_conversation(alice, room_key("lobby"))
    send(alice, "hey @bob look")
    send(alice, "no mention of bobby here")
    history = bob.main_window.notifier.history
    wait(lambda: ("alice mentioned you in #lobby", "hey @bob look") in history)
    # A room's level is "all" until changed (test_client_mentions.py changes it).
    wait(lambda: ("alice in #lobby", "no mention of bobby here") in history)
    lobby = bob.state.conversation(room_key("lobby"))
    assert lobby.mentions == 1
    # The focused window is not notified of its own conversation.
    assert alice.main_window.notifier.history == []


# ---------------------------------------------------------------------- keyboard


def test_shortcuts_switch_find_and_escape(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "bob")
    befriend(alice, bob)
    for text in ("apples", "pears", "more apples", "plums"):
        send(alice, text)
    wait(lambda: alice.state.conversation(room_key("lobby")).messages[-1]["state"] == SENT)
    window = alice.main_window

    # Ctrl+K, type part of a name, Enter: the conversation opens.
    open_conversation(alice, dm_key("bob"))
    for query, key in (("lob", room_key("lobby")), ("bo", dm_key("bob"))):
        press(window.chat.compose, Qt.Key_K, Qt.ControlModifier)
        switcher = dialog(SwitcherDialog, "switcher")
        type_into(switcher.query, query)
        press(switcher.query, Qt.Key_Return)
        wait(lambda key=key: alice.state.active == key)
        if key == room_key("lobby"):
            # A click on bob's row opens his DM again: the row must not still count
            # as selected from the click before the switch.
            open_conversation(alice, dm_key("bob"))
    open_conversation(alice, room_key("lobby"))

    # Ctrl+F, type: the newest match is found; Enter goes to the older one; Esc closes.
    press(window.chat.compose, Qt.Key_F, Qt.ControlModifier)
    assert window.chat.find_bar.isVisible() and window.chat.find_edit.hasFocus()
    type_into(window.chat.find_edit, "apples")
    assert window.chat.find_count.text() == "1 of 2" or window.chat.find_count.text() == "2 of 2"
    found = window.chat.model.messages[window.chat.model.found_row]["text"]
    assert found == "more apples"
    press(window.chat.find_edit, Qt.Key_Return)
    assert window.chat.model.messages[window.chat.model.found_row]["text"] == "apples"
    press(window.chat.find_edit, Qt.Key_Escape)
    assert not window.chat.find_bar.isVisible() and window.chat.model.found_row == -1


# ---------------------------------------------------------------------- read and typing


def test_reading_on_one_device_clears_the_badge_on_the_other(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    laptop, phone, bob = apps("ann-laptop"), apps("ann-phone"), apps("bob")
    sign_up(laptop, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(laptop, bob)
    sign_in(phone, stack.port, "ann")
    open_conversation(bob, dm_key("ann"))
    send(bob, "one")
    send(bob, "two")
    for device in (laptop, phone):
        wait(lambda d=device: d.state.conversation(dm_key("bob")).unread == 2)
    assert phone.main_window.windowTitle() == "ChatRoom (2)"
    # Read on the laptop: the phone's badge and title clear (the server's read push).
    open_conversation(laptop, dm_key("bob"))
    wait(lambda: phone.state.conversation(dm_key("bob")).unread == 0, what="phone's badge")
    wait(lambda: phone.main_window.windowTitle() == "ChatRoom")
    wait(lambda: phone.main_window.side.friends.item(0).data(CONTACT_ROLE)["unread"] == 0)
    # A device that never saw this account counts from the server's marker, not "all read".
    send(bob, "three")
    wait(lambda: "three" in texts(laptop, dm_key("bob")))
    tablet = apps("ann-tablet")
    sign_in(tablet, stack.port, "ann")
    wait(lambda: tablet.state.conversation(dm_key("bob")).unread == 1, what="server's count")
    assert tablet.main_window.windowTitle() == "ChatRoom (1)"


def test_a_conversation_on_screen_is_marked_read_while_messages_keep_coming(
    apps, make_stack, sqlite_url
):
    """A busy chat on screen never pauses for the mark delay (MARK_DELAY_MS): the client
    must still tell the server, within a few seconds, that it has been read. (It used
    to put the read.mark off at every new message, so in a stream it never went.)"""
    stack = make_stack(sqlite_url)
    laptop, bob = apps("ann-laptop"), apps("bob")
    sign_up(laptop, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(laptop, bob)
    focus_window(laptop.main_window)  # ann looks at it
    open_conversation(laptop, dm_key("bob"))
    wait(lambda: laptop.state.watching, what="ann's window in front")
    with WireClient(stack.port) as phone, WireClient(stack.port) as writer:
        phone.login("ann", PASSWORD)  # ann's other device hears her read pushes
        writer.login("bob", PASSWORD)
        marked = None
        for n in range(60):  # a message every ~150 ms, for at most ~9 s
            writer.call("dm.send", to="ann", text=f"busy {n}")
            pump(0.15)  # the pace of the stream, not a wait for something
            try:
                marked = phone.event("read", timeout=0.02)
                break
            except TimeoutError:
                continue
        assert marked is not None, "no read.mark while the messages kept coming"
        assert marked["seq"] >= 1 and n < 59
    assert laptop.state.conversation(dm_key("bob")).unread == 0


def test_typing_shows_under_the_conversation_until_sent(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(ann, bob)
    open_conversation(ann, dm_key("bob"))
    open_conversation(bob, dm_key("ann"))
    line = bob.main_window.chat.typing_line
    assert line.isHidden()
    type_into(ann.main_window.chat.compose, "are you there")
    wait(lambda: not line.isHidden(), what="bob sees ann typing")
    assert line.text() == "ann is typing…"
    press(ann.main_window.chat.compose, Qt.Key_Return)
    wait(lambda: "are you there" in shown(bob))
    wait(lambda: line.isHidden(), what="typing line gone once the message arrived")
    # In the lobby too, for everyone in it; bob does not see his own hint.
    open_conversation(ann, room_key("lobby"))
    open_conversation(bob, room_key("lobby"))
    type_into(bob.main_window.chat.compose, "hm")
    wait(lambda: ann.main_window.chat.typing_line.text() == "bob is typing…")
    assert line.isHidden()
    # Emptying the box stops it.
    bob.main_window.chat.compose.clear()
    wait(lambda: ann.main_window.chat.typing_line.isHidden(), what="stopped when emptied")


def test_several_typing_in_a_busy_room_show_together(apps, make_stack, sqlite_url):
    """A busy room's hints reach a member merged into one push (the edge holds those of
    the next window, here 3 s, so a slow machine cannot split them): ann sees both
    names, and bob's name goes once he empties his box."""
    stack = make_stack(sqlite_url, typing_merge_ms=3000)
    ann, bob, cat = apps("ann"), apps("bob"), apps("cat")
    for app, name in ((ann, "ann"), (bob, "bob"), (cat, "cat")):
        sign_up(app, stack.port, name)
        open_conversation(app, room_key("lobby"))
    line = ann.main_window.chat.typing_line
    type_into(ann.main_window.chat.compose, "x")  # opens the lobby's window: the rest wait
    type_into(bob.main_window.chat.compose, "hello")
    type_into(cat.main_window.chat.compose, "hi")
    wait(lambda: line.text() == "bob and cat are typing…", what="both names from one push")
    bob.main_window.chat.compose.clear()
    # (cat's client stops by itself after a pause: the line may go at once.)
    wait(lambda: "bob" not in line.text(), what="bob stopped")


def test_a_refused_message_says_why_and_can_be_sent_again_or_removed(apps, make_stack, sqlite_url):
    """Found by a new user's trial: a refused message's reason was cut off in its header
    and nothing could be done with it. Its tooltip has the whole reason; right-click:
    Send again (a new attempt) or Remove. Refused here: a reply to a message its author
    deleted while the reply was on its way."""
    stack = make_stack(sqlite_url)
    app = apps("ann")
    sign_up(app, stack.port, "ann")
    with WireClient(stack.port) as cat:
        cat.register_and_login("cat")
        original = cat.call("room.send", room="lobby", text="delete me soon")["message"]
        open_conversation(app, room_key("lobby"))
        right_click_message(app, "delete me soon")
        choose_menu_item("message_menu", "reply")
        compose = app.main_window.chat.compose
        type_into(compose, "an answer")
        # Enter, and the delete reaches the server before the reply does: Qt writes the
        # request when its event loop next runs, and cat's call holds the loop up until
        # the delete is done. (A delete that reaches ann first takes her reply bar with
        # it: tests/test_client_edits.py.)
        QTest.keyClick(compose, Qt.Key_Return)
        cat.call("message.delete", message=original["id"])
        lobby = app.state.conversation(room_key("lobby"))
        wait(lambda: any(m.get("deleted") for m in lobby.messages), what="the delete arrived")

        def failed() -> list:
            return [m for m in lobby.messages if m["text"] == "an answer"]

        wait(lambda: [m["state"] for m in failed()] == [FAILED], what="refused")
        chat = app.main_window.chat
        row = wait(
            lambda: next(
                (n for n, m in enumerate(chat.model.messages) if m.get("state") == FAILED), None
            ),
            what="shown as not sent",
        )
        tip = chat.model.data(chat.model.index(row), Qt.ItemDataRole.ToolTipRole)
        assert tip.startswith("Not sent: the message it replies to was deleted")
        assert "Send again" in tip
        first = failed()[0]

        right_click_message(app, "an answer")
        choose_menu_item("failed_menu", "resend")
        wait(lambda: failed() and failed()[0] is not first, what="sent again")
        wait(lambda: [m["state"] for m in failed()] == [FAILED], what="refused again")
        again = failed()[0]["client_id"]
        wait(
            lambda: (
                [m.get("client_id") for m in chat.model.messages if m["text"] == "an answer"]
                == [again]
            ),
            what="the new attempt on screen",
        )

        right_click_message(app, "an answer")
        choose_menu_item("failed_menu", "discard")
        wait(lambda: not failed(), what="removed")
        wait(lambda: "an answer" not in shown(app), what="gone from the screen")
