"""Reading in the desktop client: the message list follows new messages while the user
is at the bottom, whatever shrinks the list or arrives at once; what is not on screen
stays unread, with a "new messages" indication; the typing line never covers the last
message. Found by a new user's trial; scrolled with the mouse wheel and clicked as a
person does (tests/clicks.py) in an app talking to real local services.
"""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from client.conversations import room_key  # noqa: E402

from clicks import click, focus_window, shown, sign_up, wait, wheel  # noqa: E402
from wire import WireClient  # noqa: E402


def at_bottom(view) -> bool:
    bar = view.verticalScrollBar()
    return bar.maximum() > 0 and bar.value() == bar.maximum()


def last_message_fully_shown(chat) -> bool:
    rows = chat.model.rowCount()
    if not rows:
        return False
    rect = chat.view.visualRect(chat.model.index(rows - 1))
    return chat.view.viewport().rect().contains(rect)


def test_the_list_follows_new_messages_while_at_the_bottom(apps, make_stack, sqlite_url):
    """It used to decide at each refresh whether the user was at the bottom from where
    the scroll bar stood: anything that shrank the list meanwhile (the typing line
    appearing, a banner) left it short of the new bottom, and it stopped following."""
    stack = make_stack(sqlite_url)
    ann = apps("ann")
    sign_up(ann, stack.port, "ann")
    window = ann.main_window
    window.resize(980, 660)
    focus_window(window)
    chat = window.chat
    with WireClient(stack.port) as bob, WireClient(stack.port) as cy:
        bob.register_and_login("bob")
        cy.register_and_login("cy")
        for n in range(30):
            bob.call("room.send", room="lobby", text=f"filler {n}")
        wait(lambda: "filler 29" in shown(ann) and at_bottom(chat.view), what="at the bottom")

        # cy types: the line under the list takes its height from the list.
        cy.call("typing", room="lobby", on=True)
        wait(lambda: not chat.typing_line.isHidden(), what="cy is typing")
        bob.call("room.send", room="lobby", text="one after the typing line")
        wait(lambda: "one after the typing line" in shown(ann))
        wait(lambda: at_bottom(chat.view), what="followed past the typing line")

        # A banner above the list (a friend request's notice), then a message taller
        # than the view.
        cy.call("friend.request", username="ann")
        wait(lambda: chat.notice_bar.isVisible(), what="the banner")
        tall = "\n".join(f"line {n} of a long paste" for n in range(60))
        bob.call("room.send", room="lobby", text=tall)
        wait(lambda: shown(ann)[-1] == tall and at_bottom(chat.view), what="tall followed")

        # Several at once.
        for n in range(6):
            bob.send({"op": "room.send", "id": 90000 + n, "room": "lobby", "text": f"b{n}"})
        wait(lambda: shown(ann)[-1] == "b5" and at_bottom(chat.view), what="burst followed")
        assert ann.state.conversation(room_key("lobby")).unread == 0


def test_the_typing_line_does_not_cover_the_last_message(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann = apps("ann")
    sign_up(ann, stack.port, "ann")
    window = ann.main_window
    window.resize(980, 660)
    chat = window.chat
    with WireClient(stack.port) as bob:
        bob.register_and_login("bob")
        for n in range(20):
            bob.call("room.send", room="lobby", text=f"message {n}")
        wait(lambda: "message 19" in shown(ann) and at_bottom(chat.view))
        wait(lambda: last_message_fully_shown(chat), what="the last message on screen")
        bob.call("typing", room="lobby", on=True)
        wait(lambda: not chat.typing_line.isHidden(), what="bob is typing")

        def clear_of_the_line() -> bool:
            view_bottom = chat.view.mapTo(chat, chat.view.rect().bottomLeft()).y()
            return view_bottom < chat.typing_line.geometry().top()

        wait(
            lambda: clear_of_the_line() and at_bottom(chat.view) and last_message_fully_shown(chat),
            what="the last message whole above the typing line",
        )


def test_activating_the_window_reads_only_what_is_shown(apps, make_stack, sqlite_url):
    """Scrolled up to older messages, the new ones are below, out of sight: neither the
    window coming to the front nor their arrival marks them read; the "new messages"
    button says how many and takes the user to them."""
    stack = make_stack(sqlite_url)
    ann, cat = apps("ann"), apps("cat")
    sign_up(ann, stack.port, "ann")
    sign_up(cat, stack.port, "cat")
    window = ann.main_window
    window.resize(980, 660)
    chat = window.chat
    lobby = ann.state.conversation(room_key("lobby"))
    with WireClient(stack.port) as bob:
        bob.register_and_login("bob")
        focus_window(window)
        for n in range(40):
            bob.call("room.send", room="lobby", text=f"earlier {n}")
        wait(lambda: "earlier 39" in shown(ann) and at_bottom(chat.view))
        wait(lambda: lobby.unread == 0 and ann.state.watching)

        wheel(chat.view.viewport(), 4)  # up, to read older ones
        wait(lambda: not at_bottom(chat.view), what="scrolled up")
        assert chat.new_messages.isHidden()  # nothing new yet

        focus_window(cat.main_window)  # ann looks at another window
        wait(lambda: not window.isActiveWindow())
        for n in range(3):
            bob.call("room.send", room="lobby", text=f"new {n}")
        wait(lambda: lobby.unread == 3, what="counted while away")

        focus_window(window)  # back, still scrolled up: the new ones are not on screen
        wait(lambda: not chat.new_messages.isHidden(), what="the new-messages button")
        assert lobby.unread == 3 and window.windowTitle() == "ChatRoom (3)"
        assert "3 new messages" in chat.new_messages.text()
        assert not last_message_fully_shown(chat)

        # One more while she reads up there: unread too.
        bob.call("room.send", room="lobby", text="new 3")
        wait(lambda: lobby.unread == 4 and "4 new" in chat.new_messages.text())

        click(chat.new_messages)
        wait(lambda: at_bottom(chat.view) and lobby.unread == 0, what="read once shown")
        wait(lambda: chat.new_messages.isHidden())
        assert window.windowTitle() == "ChatRoom"
        assert lobby.read_seq == lobby.last_seq
