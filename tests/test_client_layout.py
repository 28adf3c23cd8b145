"""The desktop client's shape, found by a new user's trial: a small window keeps the
conversation's name in its header, a long sign-in error does not move the form, the
room's notifications button is a normal button. Clicked as a person does
(tests/clicks.py) in apps talking to real local services.
"""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from client.conversations import dm_key, room_key  # noqa: E402
from client.dialogs import RoomDialog  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    befriend,
    choose_menu_item,
    click,
    dialog,
    fill_login,
    open_conversation,
    pump,
    send,
    sign_up,
    texts,
    type_into,
    wait,
)

BOOK_CLUB = "Book Club 读书会"


def header_buttons(chat) -> list:
    return [
        b
        for b in (
            chat.notify.widget,
            chat.settings_button,
            chat.members_button,
            chat.leave_button,
            chat.remove_friend_button,
            chat.more_button,
        )
        if b.isVisible()
    ]


def whole(chat) -> bool:
    """The title shown unelided, and every header button wider than its text."""
    return chat.title.text() == chat.title.full_text() and all(
        b.width() >= b.fontMetrics().horizontalAdvance(b.text()) + 8 for b in header_buttons(chat)
    )


def test_a_small_window_keeps_the_conversations_name(apps, make_stack, sqlite_url):
    """At 420×360 the header showed "…" and clipped buttons: the buttons took the room.
    Now, when they do not fit beside the name, the name has its own line and the
    room's actions go into a "⋯" menu."""
    stack = make_stack(sqlite_url)
    ann = apps("ann")
    sign_up(ann, stack.port, "ann")
    window = ann.main_window
    chat = window.chat
    click(window.side.join_room_button)
    rooms = dialog(RoomDialog, "rooms_dialog")
    type_into(rooms.query, "Book Club ")
    rooms.query.insert("读书会")  # typed through an input method: Qt cannot key it in
    wait(lambda: rooms.create_button.isEnabled())
    click(rooms.create_button)
    wait(lambda: ann.state.active == room_key(BOOK_CLUB))

    window.resize(980, 660)
    # The layout settles after the resize's events: each check waits for it.
    wait(
        lambda: (
            chat.title.full_text() == f"# {BOOK_CLUB}"
            and whole(chat)
            and chat.settings_button.isVisible()
            and chat.more_button.isHidden()
        ),
        what="the header wide",
    )

    window.resize(420, 360)
    wait(
        lambda: (
            window.width() <= 440
            and whole(chat)
            and chat.title.text() == f"# {BOOK_CLUB}"
            and chat.notify.widget.isVisible()
        ),
        what="the name whole when small",
    )
    for b in header_buttons(chat):
        assert chat.rect().contains(b.geometry().translated(b.parentWidget().pos())), b
    # The room's actions are one click further: ⋯, then Members.
    click(chat.more_button)
    choose_menu_item("header_menu", "members")
    wait(lambda: chat.members.isVisible(), what="members shown from the ⋯ menu")
    click(chat.more_button)
    choose_menu_item("header_menu", "members")
    wait(lambda: chat.members.isHidden())

    window.resize(980, 660)
    wait(
        lambda: chat.settings_button.isVisible() and whole(chat) and chat.more_button.isHidden(),
        what="wide again",
    )


def test_a_long_sign_in_error_does_not_move_the_form(apps):
    from harness import free_port

    app = apps("lost")
    window = app.login_window
    app.show()
    fill_login(app, free_port(), "lost")
    window.host.clear()
    type_into(window.host, "localhost")  # a longer error: the name and its address
    pump(0.1)
    fields = (
        window.host,
        window.port,
        window.tls,
        window.ca_file,
        window.username,
        window.password,
        window.sign_in_button,
        window.register_button,
    )
    before = [f.geometry() for f in fields]
    size = window.size()
    click(window.sign_in_button)
    wait(lambda: "Cannot connect to localhost:" in window.error.text(), what="the error")
    pump(0.1)  # the layout's turn (a posted event), were it to move anything
    assert [f.geometry() for f in fields] == before
    assert window.size() == size
    # The whole of it is there to read (wrapped, or in the tooltip when cut).
    error = window.error
    assert error.isVisible() and error.geometry().bottom() < window.sign_in_button.y()
    assert "Check the address" in error.text() + error.toolTip()


def test_the_notifications_button_is_a_normal_button(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann = apps("ann")
    sign_up(ann, stack.port, "ann")
    window = ann.main_window
    window.resize(980, 660)
    chat = window.chat
    face = chat.notify.widget
    wait(lambda: face.isVisible() and chat.settings_button.isVisible())
    pump(0.1)
    assert face.height() == chat.settings_button.height()
    assert face.width() >= face.sizeHint().width()  # not squeezed below its face
    assert face.width() >= chat.members_button.width() * 0.75
    assert "All" in face.text() and "Notifications" in face.toolTip()
    click(face)
    choose_menu_item("notify_menu", "notify:mentions")
    wait(lambda: "Mentions" in face.text())


def test_a_former_friends_chat_says_why_in_full_when_small(apps, make_stack, sqlite_url):
    """The disabled compose box's reason is its placeholder: in a small window it was
    cut after two of its four lines. The box now grows to show all of it."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QFontMetrics

    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(ann, bob)
    open_conversation(ann, dm_key("bob"))
    send(ann, "it was nice knowing you")  # a chat to keep: listed after the friendship
    wait(lambda: "it was nice knowing you" in texts(bob, dm_key("ann")))
    click(ann.main_window.chat.remove_friend_button)
    answer_confirm("confirm_remove_friend")
    wait(lambda: "ann" not in bob.state.friends)
    window = bob.main_window
    chat = window.chat
    open_conversation(bob, dm_key("ann"))
    wait(lambda: not chat.compose.isEnabled())
    for size in ((980, 660), (420, 360)):
        window.resize(*size)
        pump(0.1)
        box = chat.compose
        reason = box.placeholderText()
        assert reason.startswith("ann is not your friend")
        room = box.viewport().contentsRect().adjusted(4, 4, -4, -4)
        needed = QFontMetrics(box.font()).boundingRect(
            QRect(0, 0, room.width(), 10_000), Qt.TextFlag.TextWordWrap, reason
        )
        wait(
            lambda box=box, needed=needed: (
                box.viewport().height() >= needed.height() + 2 * box.document().documentMargin()
            ),
            what=f"the whole reason at {size}",
        )
        assert chat.send_button.geometry().bottom() <= chat.height(), size


def test_fit_words_cuts_at_a_word_to_the_height_given(qtbot):
    """What the sign-in error and an empty list's hint use to stay in their place."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QFont, QFontMetrics

    from client.ui import fit_words

    metrics = QFontMetrics(QFont())
    text = "No friends yet. Click “Add friend” and type a username to ask someone."
    line = metrics.lineSpacing()
    assert fit_words(metrics, text, 2000, line + 2) == text
    cut = fit_words(metrics, text, 150, 2 * line + 2)
    assert cut.endswith("…") and text.startswith(cut[:-1])
    wrapped = metrics.boundingRect(QRect(0, 0, 150, 10_000), Qt.TextFlag.TextWordWrap, cut)
    assert wrapped.height() <= 2 * line + 2
