"""Editing, deleting and replying in the desktop client, by clicks (tests/clicks.py):
right-click your message, Edit… (type the new text), Delete… (confirm); right-click
someone's message, Reply (the quote is shown on the reply; clicking the reply scrolls
to the original). The other person's window updates in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QAbstractButton, QDialog, QMenu, QPlainTextEdit  # noqa: E402
from shiboken6 import isValid  # noqa: E402

from client.conversations import FAILED, dm_key, room_key  # noqa: E402
from client.widgets import CONTACT_ROLE  # noqa: E402

from clicks import (  # noqa: E402
    Redraws,
    answer_confirm,
    answer_lines,
    befriend,
    choose_menu_item,
    click,
    click_message,
    dialog,
    open_conversation,
    press,
    right_click_message,
    send,
    shown,
    sign_up,
    texts,
    type_into,
    wait,
)
from wire import WireClient  # noqa: E402

SHOTS = Path(os.environ.get("CHAT_TEST_SCREENSHOTS", "var/screenshots"))


def shot(app, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    app.main_window.grab().save(str(SHOTS / f"edit-{name}.png"))


def ann_and_bob_in_the_lobby(apps, port: int, first: str):
    """ann and bob signed up; ann has said `first` and bob sees it."""
    people = apps("ann"), apps("bob")
    for app, name in zip(people, ("ann", "bob"), strict=True):
        sign_up(app, port, name)
    send(people[0], first)
    wait(lambda: first in shown(people[1]))
    return people


def test_edit_delete_and_reply_by_clicking(apps, make_stack, sqlite_url):
    ann, bob = ann_and_bob_in_the_lobby(apps, make_stack(sqlite_url).port, "see you at five")

    # ann: right-click her message, Edit..., type the new text; both lists draw it again
    redrawn = {app: Redraws(app) for app in (ann, bob)}
    right_click_message(ann, "see you at five")
    choose_menu_item("message_menu", "edit")
    answer_lines("edit_message", "see you at six")
    wait(lambda: "see you at six" in shown(bob), what="the edit on bob's screen")
    for app in (ann, bob):
        wait(lambda app=app: redrawn[app].of("see you at six (edited)"), what="the edit drawn")
    lobby = bob.state.conversation(room_key("lobby")).messages
    assert [m.get("edited_at") is not None for m in lobby] == [True]
    assert "see you at five" not in shown(bob)

    # bob: right-click ann's message, Reply; the reply shows the quoted original
    right_click_message(bob, "see you at six")
    choose_menu_item("message_menu", "reply")
    assert bob.main_window.chat.message_menu.bar.isVisible()
    send(bob, "works for me")
    wait(lambda: "works for me" in shown(ann))
    reply = next(m for m in ann.main_window.chat.model.messages if m["text"] == "works for me")
    assert reply["reply_to"]["text"] == "see you at six"
    assert not bob.main_window.chat.message_menu.bar.isVisible()
    shot(ann, "reply")

    # many messages later, clicking the reply scrolls back to the original
    for n in range(25):
        send(ann, f"filler {n}")
    wait(lambda: "filler 24" in shown(bob))
    chat = bob.main_window.chat
    chat.view.scrollToBottom()
    click_message(bob, "works for me")
    original = next(n for n, m in enumerate(chat.model.messages) if m["text"] == "see you at six")
    wait(lambda: chat.model.found_row == original, what="the original highlighted")
    rect = chat.view.visualRect(chat.model.index(original))
    assert chat.view.viewport().rect().intersects(rect), "the original is scrolled into view"

    # ann deletes her message (after confirming): a tombstone on both screens, and the
    # quote in bob's reply says it is gone
    redrawn = {app: Redraws(app) for app in (ann, bob)}
    right_click_message(ann, "see you at six")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message", yes=True)
    wait(lambda: "see you at six" not in shown(bob), what="the delete on bob's screen")
    for app in (ann, bob):
        wait(lambda app=app: redrawn[app].of("(message deleted)"), what="the tombstone drawn")
    wait(lambda: redrawn[bob].of("works for me"), what="the reply's quote drawn again")
    gone = next(m for m in bob.state.conversation(room_key("lobby")).messages if m.get("deleted"))
    assert gone["text"] == ""
    answered = next(m for m in chat.model.messages if m["text"] == "works for me")
    assert answered["reply_to"]["deleted"] is True
    shot(bob, "deleted")


def test_a_reply_stays_in_its_conversation_and_follows_the_original(apps, make_stack, sqlite_url):
    """A trial: Reply in the lobby, then a private chat: the reply bar came along, and
    what was sent there was refused (no such message in that conversation). The bar
    belongs to its conversation, shows the original as edited, and goes when it is
    deleted."""
    ann, bob = ann_and_bob_in_the_lobby(apps, make_stack(sqlite_url).port, "lunch at noon?")
    befriend(ann, bob)
    lobby, with_ann = room_key("lobby"), dm_key("ann")
    open_conversation(bob, lobby)
    right_click_message(bob, "lunch at noon?")
    choose_menu_item("message_menu", "reply")
    menu = bob.main_window.chat.message_menu
    assert menu.bar.isVisible()

    open_conversation(bob, with_ann)
    assert not menu.bar.isVisible()
    send(bob, "psst")
    wait(lambda: "psst" in texts(ann, dm_key("bob")), what="the private message at ann's")
    sent = next(m for m in bob.state.conversation(with_ann).messages if m["text"] == "psst")
    wait(lambda: sent.get("id") is not None, what="psst stored")
    assert sent.get("state") != FAILED and not sent.get("reply_to")

    open_conversation(bob, lobby)  # the reply waits where it was started
    assert menu.bar.isVisible()
    assert menu.label.full_text() == "Replying to ann: lunch at noon?"
    open_conversation(ann, lobby)
    right_click_message(ann, "lunch at noon?")
    choose_menu_item("message_menu", "edit")
    answer_lines("edit_message", "lunch at one?")
    wait(
        lambda: menu.label.full_text() == "Replying to ann: lunch at one?",
        what="the bar showing the edit",
    )
    right_click_message(ann, "lunch at one?")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message")
    wait(lambda: not menu.bar.isVisible(), what="the bar gone with its message")
    assert bob.main_window.chat.notice.text() == "The message you were replying to was deleted."
    send(bob, "ok then")  # a plain message now, not a refused reply
    wait(lambda: "ok then" in texts(ann, lobby), what="bob's message at ann's")


def test_a_deleted_last_message_is_previewed_as_deleted(apps, make_stack, sqlite_url):
    """The room's row previews its last message: deleted, it said "ann: " and nothing."""
    ann, bob = ann_and_bob_in_the_lobby(apps, make_stack(sqlite_url).port, "oops, wrong room")
    right_click_message(ann, "oops, wrong room")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message", yes=True)
    for app, who in ((ann, "You"), (bob, "ann")):
        rooms = app.main_window.side.rooms
        wait(
            lambda rooms=rooms, who=who: (
                rooms.item(0).data(CONTACT_ROLE)["subtitle"] == f"{who}: (message deleted)"
            ),
            what=f"{who}'s preview",
        )


def test_delete_can_be_cancelled_and_others_messages_have_no_edit(apps, make_stack, sqlite_url):
    ann, bob = ann_and_bob_in_the_lobby(apps, make_stack(sqlite_url).port, "keep this")
    right_click_message(ann, "keep this")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message", yes=False)
    right_click_message(bob, "keep this")

    menu = dialog(QMenu, "message_menu")
    # Someone else's message: Reply, and Block its author (test_client_blocking.py).
    assert [a.objectName() for a in menu.actions()] == ["reply", "block"]
    menu.close()
    assert "keep this" in shown(bob) and "keep this" in shown(ann)


def closed(prompt: QDialog) -> bool:
    """The editor is gone (it deletes itself on close)."""
    return not isValid(prompt) or not prompt.isVisible()


def _edit_prompt(app, text: str) -> tuple[QDialog, QPlainTextEdit]:
    """Right-click our message showing `text`, Edit…: the editor that opens."""
    right_click_message(app, text)
    choose_menu_item("message_menu", "edit")
    prompt = dialog(QDialog, "edit_message")
    return prompt, prompt.findChild(QPlainTextEdit)


def test_edit_keeps_every_line_of_a_message(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann = apps("ann")
    sign_up(ann, stack.port, "ann")
    box = ann.main_window.chat.compose
    type_into(box, "see you at five")
    press(box, Qt.Key_Return, Qt.ShiftModifier)  # a second line
    type_into(box, "by the gate")
    press(box, Qt.Key_Return)
    two_lines = "see you at five\nby the gate"

    # prefilled with both lines; Enter adds a line (it does not save), Save saves
    prompt, editor = _edit_prompt(ann, two_lines)
    assert editor.toPlainText() == two_lines
    press(editor, Qt.Key_Return)
    type_into(editor, "bring snacks")
    assert prompt.isVisible()
    click(prompt.findChild(QAbstractButton, "save"))
    three_lines = "see you at five\nby the gate\nbring snacks"
    wait(lambda: three_lines in shown(ann), what="the edit shown")

    # Cancel changes nothing; a blank text cannot be saved
    prompt, editor = _edit_prompt(ann, three_lines)
    editor.clear()
    assert not prompt.findChild(QAbstractButton, "save").isEnabled()
    click(prompt.findChild(QAbstractButton, "cancel"))
    wait(lambda: closed(prompt), what="Cancel closed the editor")
    assert three_lines in shown(ann)

    # Ctrl+Enter saves
    prompt, editor = _edit_prompt(ann, three_lines)
    press(editor, Qt.Key_Backspace)  # the cursor starts at the end: "snack"
    press(editor, Qt.Key_Return, Qt.ControlModifier)
    wait(lambda: closed(prompt), what="Ctrl+Enter saved")
    final = "see you at five\nby the gate\nbring snack"
    wait(lambda: final in shown(ann), what="the second edit shown")

    # what the server stored, as someone else reads it
    with WireClient(stack.port) as bob:
        bob.register_and_login("bob")
        history = bob.call("room.history", room="lobby")["messages"]
    assert [(m["text"], m.get("edited_at") is not None) for m in history] == [(final, True)]
