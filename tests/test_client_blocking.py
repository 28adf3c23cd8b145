"""Blocking in the desktop client, by clicks (tests/clicks.py): right-click a friend in
the friend list, Block… (confirm): the friendship ends on both screens and the blocked
user's room messages are not shown; Account settings lists them, Unblock; right-click
their message, Block…; right-click them in the member list, Unblock."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from client.account_dialog import AccountDialog  # noqa: E402
from client.conversations import dm_key, room_key  # noqa: E402
from client.widgets import CONTACT_ROLE  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    answer_text,
    befriend,
    choose_menu_item,
    click,
    click_button,
    click_row,
    open_conversation,
    open_settings,
    right_click_message,
    right_click_row,
    send,
    shown,
    sign_up,
    texts,
    wait,
)
from wire import WireClient  # noqa: E402


def unblock_in_settings(app, username: str) -> AccountDialog:
    """Account settings (the avatar, then Account settings): pick them among the blocked
    users, Unblock; the dialog stays open."""
    settings = open_settings(app)
    click_row(settings.blocked, username)
    click_button(settings, "unblock")
    wait(lambda: not app.state.blocks.is_blocked(username), what=f"{username} unblocked")
    return settings


def test_block_and_unblock_by_clicking(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(ann, bob)
    open_conversation(ann, dm_key("bob"))
    send(ann, "see you")
    wait(lambda: "see you" in texts(bob, dm_key("ann")), what="their chat")
    with WireClient(stack.port) as cat:
        cat.register_and_login("cat")

        # The friend list: right-click bob, Block..., confirm.
        right_click_row(ann.main_window.side.friends, "bob")
        choose_menu_item("user_menu", "block")
        answer_confirm("confirm_block")
        wait(lambda: ann.state.blocks.is_blocked("bob"), what="bob blocked")
        wait(lambda: "ann" not in bob.state.friends, what="the friendship ended for bob")
        assert "bob" not in ann.state.friends
        # Their chat stays to read; its box says why ann cannot write: her block (a new
        # user's trial saw "bob is not your friend ... send them a friend request").
        open_conversation(ann, dm_key("bob"))
        why = ann.main_window.chat.compose.placeholderText()
        assert why.startswith("You blocked bob") and "Unblock" in why, why
        assert not ann.main_window.chat.compose.isEnabled()

        # His room messages are not shown; cat's, sent after his, are.
        open_conversation(ann, room_key("lobby"))
        open_conversation(bob, room_key("lobby"))
        send(bob, "can you hear me")
        wait(lambda: "can you hear me" in shown(bob))
        cat.call("room.send", room="lobby", text="cat here")
        wait(lambda: "cat here" in shown(ann), what="cat's message")
        assert "can you hear me" not in shown(ann)

        # Account settings: bob is listed; pick him, Unblock.
        settings = unblock_in_settings(ann, "bob")
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
        # What he said before the block goes from view at once (found by a new user's
        # trial: it stayed until a restart), from the list's preview too.
        wait(lambda: "back again" not in shown(ann), what="his earlier message hidden")
        preview = ann.main_window.side.rooms.item(0).data(CONTACT_ROLE)["subtitle"]
        assert "back again" not in preview, preview
        send(bob, "while blocked")
        wait(lambda: "while blocked" in shown(bob))

        # The member list: right-click bob, Unblock. All he said is shown again, what he
        # said during the block too (the server had kept it from ann).
        click(ann.main_window.chat.members_button)
        right_click_row(ann.main_window.chat.members, "bob")
        choose_menu_item("user_menu", "unblock")
        wait(lambda: not ann.state.blocks.is_blocked("bob"), what="bob unblocked from members")
        wait(
            lambda: {"can you hear me", "back again", "while blocked"} <= set(shown(ann)),
            what="his messages back, those of the block too",
        )


def test_a_conversation_that_ends_under_you_says_why(apps, make_stack, sqlite_url):
    """Found by a new user's trial: bob had his chat with ann open when she blocked him;
    his header went blank and Send did nothing, silently. Now the chat stays, to read:
    its composer is disabled and says why, and ann stays listed (greyed) to open it
    again. A room he is kicked from gives way to the lobby."""
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(ann, bob)
    open_conversation(bob, dm_key("ann"))
    send(bob, "hi ann")
    wait(lambda: "hi ann" in shown(bob))
    right_click_row(ann.main_window.side.friends, "bob")
    choose_menu_item("user_menu", "block")
    answer_confirm("confirm_block")
    wait(lambda: "no longer your friend" in bob.main_window.chat.notice.text())
    chat = bob.main_window.chat
    wait(lambda: not chat.compose.isEnabled(), what="bob's composer disabled")
    assert "ann is not your friend" in chat.compose.placeholderText()
    assert not chat.send_button.isEnabled()
    assert bob.state.active == dm_key("ann") and chat.title.text() == "@ ann"
    assert "hi ann" in shown(bob)  # still there to read
    # Elsewhere and back: the greyed row opens it again.
    open_conversation(bob, room_key("lobby"))
    send(bob, "still here")
    wait(lambda: "still here" in shown(bob), what="bob writes in the lobby")
    open_conversation(bob, dm_key("ann"))
    wait(lambda: "hi ann" in shown(bob), what="the old chat, to read")

    # Blocked, bob asks ann again: told it was sent (blocking is not revealed), it is
    # not. Once ann unblocks him and asks him herself, his stale "sent" row goes: he
    # sees her request only, and Accept makes them friends.
    click(bob.main_window.add_friend_button)
    answer_text("add_friend_dialog", "ann")
    wait(lambda: [r["user"]["username"] for r in bob.state.outgoing] == ["ann"])
    click_button(unblock_in_settings(ann, "bob"), "close")
    click(ann.main_window.add_friend_button)
    answer_text("add_friend_dialog", "bob")
    wait(lambda: [r["user"]["username"] for r in bob.state.incoming] == ["ann"])
    assert bob.state.outgoing == []
    click_button(bob.main_window, "accept:ann")
    wait(lambda: "ann" in bob.state.friends and "bob" in ann.state.friends)

    with WireClient(stack.port) as owner:
        owner.register_and_login("owner")
        owner.call("room.create", room="den")
        owner.call("room.invite", room="den", username="bob")
        wait(lambda: room_key("den") in bob.state.conversations, what="bob in the den")
        open_conversation(bob, room_key("den"))
        owner.call("room.kick", room="den", username="bob")
        wait(lambda: bob.state.active == room_key("lobby"), what="the lobby after the kick")
