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

from PySide6.QtWidgets import QMenu  # noqa: E402

from client.conversations import room_key  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    answer_text,
    choose_menu_item,
    click_message,
    dialog,
    right_click_message,
    send,
    shown,
    sign_up,
    wait,
)

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

    # ann: right-click her message, Edit..., type the new text
    right_click_message(ann, "see you at five")
    choose_menu_item("message_menu", "edit")
    answer_text("edit_message", "see you at six")
    wait(lambda: "see you at six" in shown(bob), what="the edit on bob's screen")
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
    right_click_message(ann, "see you at six")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message", yes=True)
    wait(lambda: "see you at six" not in shown(bob), what="the delete on bob's screen")
    gone = next(m for m in bob.state.conversation(room_key("lobby")).messages if m.get("deleted"))
    assert gone["text"] == ""
    answered = next(m for m in chat.model.messages if m["text"] == "works for me")
    assert answered["reply_to"]["deleted"] is True
    shot(bob, "deleted")


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
