"""Blocking in the desktop client, by clicks (tests/clicks.py): right-click a friend in
the friend list, Block… (confirm): the friendship ends on both screens and the blocked
user's room messages are not shown; Account settings lists them, Unblock; right-click
their message, Block…; right-click them in the member list, Unblock."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from client.account_dialog import AccountDialog  # noqa: E402
from client.conversations import room_key  # noqa: E402
from client.profile_dialog import ProfileDialog  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    befriend,
    choose_menu_item,
    click,
    click_button,
    click_row,
    dialog,
    open_conversation,
    right_click_message,
    right_click_row,
    send,
    shown,
    sign_up,
    wait,
)
from wire import WireClient  # noqa: E402


def test_block_and_unblock_by_clicking(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(ann, bob)
    with WireClient(stack.port) as cat:
        cat.register_and_login("cat")

        # The friend list: right-click bob, Block..., confirm.
        right_click_row(ann.main_window.side.friends, "bob")
        choose_menu_item("user_menu", "block")
        answer_confirm("confirm_block")
        wait(lambda: ann.state.blocks.is_blocked("bob"), what="bob blocked")
        wait(lambda: "ann" not in bob.state.friends, what="the friendship ended for bob")
        assert "bob" not in ann.state.friends

        # His room messages are not shown; cat's, sent after his, are.
        open_conversation(ann, room_key("lobby"))
        open_conversation(bob, room_key("lobby"))
        send(bob, "can you hear me")
        wait(lambda: "can you hear me" in shown(bob))
        cat.call("room.send", room="lobby", text="cat here")
        wait(lambda: "cat here" in shown(ann), what="cat's message")
        assert "can you hear me" not in shown(ann)

        # Account settings: bob is listed; pick him, Unblock.
        click(ann.main_window.me_avatar)
        click_button(dialog(ProfileDialog, "profile"), "account_settings")
        settings = dialog(AccountDialog, "account")
        click_row(settings.blocked, "bob")
        click_button(settings, "unblock")
        wait(lambda: not ann.state.blocks.is_blocked("bob"), what="bob unblocked")
        wait(lambda: "You unblocked bob" in settings.message.text())
        assert settings.blocked.item(0).text().startswith("Nobody")
        click_button(settings, "close")

        # Heard again; right-click his message, Block..., confirm.
        send(bob, "back again")
        wait(lambda: "back again" in shown(ann), what="bob heard again")
        right_click_message(ann, "back again")
        choose_menu_item("message_menu", "block")
        answer_confirm("confirm_block")
        wait(lambda: ann.state.blocks.is_blocked("bob"), what="bob blocked from his message")

        # The member list: right-click bob, Unblock.
        click(ann.main_window.chat.members_button)
        right_click_row(ann.main_window.chat.members, "bob")
        choose_menu_item("user_menu", "unblock")
        wait(lambda: not ann.state.blocks.is_blocked("bob"), what="bob unblocked from members")
