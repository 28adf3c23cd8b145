"""Private rooms and moderation in the desktop client, by clicks (tests/clicks.py): the
room chooser's Private box, the room's Settings (invite, roles, announcement mode,
topic, kick, ban and unban, delete), the event lines in the conversation, a member's
composer disabled in an announcement room with the reason, a moderator's Delete… on
someone else's message. Against a real local server (SQLite)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QApplication, QMenu, QMessageBox  # noqa: E402

from client.conversations import room_key  # noqa: E402
from client.dialogs import RoomDialog  # noqa: E402
from client.room_settings import RoomSettingsDialog  # noqa: E402
from client.widgets import CONTACT_ROLE  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    choose_menu_item,
    click,
    click_button,
    click_row,
    dialog,
    open_conversation,
    right_click_message,
    send,
    shown,
    sign_up,
    texts,
    type_into,
    wait,
)

DEN = room_key("den")


def create_private_room(app, name: str) -> None:
    click(app.main_window.side.join_room_button)
    rooms = dialog(RoomDialog, "rooms_dialog")
    type_into(rooms.query, name)
    wait(lambda: rooms.create_button.isEnabled())
    click(rooms.private)
    click(rooms.create_button)
    wait(lambda: app.state.active == room_key(name))


def settings_shown(app) -> bool:
    return any(
        isinstance(widget, RoomSettingsDialog) and widget.state is app.state and widget.isVisible()
        for widget in QApplication.topLevelWidgets()
    )


def open_settings(app) -> RoomSettingsDialog:
    """Click Settings in the open room's header: that app's settings dialog."""
    click(app.main_window.chat.settings_button)

    def opened() -> RoomSettingsDialog | None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, RoomSettingsDialog) and widget.state is app.state:
                return widget if widget.isVisible() else None
        return None

    return wait(opened, what="the room's settings")


def test_private_room_moderated_by_clicks(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    create_private_room(ann, "den")
    assert ann.state.conversation(DEN).visibility == "private"
    assert ann.state.conversation(DEN).role == "owner"

    # bob does not find it; ann invites him from the settings.
    settings = open_settings(ann)
    assert settings.moderation.isVisible() and settings.delete_room.isVisible()
    # Titled with the lock the list and header show (a trial found "#den" here).
    assert settings.windowTitle().startswith("🔒 den"), settings.windowTitle()
    type_into(settings.invite_name, "bob")
    click(settings.invite)
    wait(lambda: DEN in bob.state.conversations, what="den in bob's list")
    # Told with the lock too (a trial found "You were added to #den").
    wait(
        lambda: bob.main_window.chat.notice.text() == "You were added to 🔒 den",
        what="bob's notice",
    )
    rooms = bob.main_window.side.rooms

    def den_row() -> dict:
        row = next(i for i in range(rooms.count()) if rooms.item(i).text() == "den")
        return rooms.item(row).data(CONTACT_ROLE)

    # A member's list marks it private as the owner's header does (a trial found "#").
    wait(lambda: den_row()["private"], what="den shown as private in bob's list")
    # Its tooltip too (a trial found "#den (private: ...)").
    assert den_row()["tooltip"].startswith("🔒 den (private"), den_row()["tooltip"]
    wait(lambda: "ann invited bob" in shown(ann), what="the event line")
    wait(lambda: settings.members.count() == 2)

    # ann makes bob a moderator, then turns announcement mode on and sets a topic.
    click_row(settings.members, "bob")
    click(settings.make_moderator)
    wait(lambda: bob.state.conversation(DEN).role == "moderator")
    click(settings.announce)
    settings.topic.clear()
    type_into(settings.topic, "plans only")
    click(settings.save_topic)
    wait(lambda: bob.state.conversation(DEN).topic == "plans only")
    assert bob.state.conversation(DEN).announce

    # bob, a moderator, sees the moderation controls but not the owner's; he may post.
    open_conversation(bob, DEN)
    assert bob.main_window.chat.compose.isEnabled()
    assert bob.main_window.chat.presence_line.full_text() == "plans only"
    send(ann, "rules: be nice")
    wait(lambda: "rules: be nice" in texts(bob, DEN))
    bobs = open_settings(bob)
    assert bobs.moderation.isVisible() and not bobs.make_owner.isVisible()
    assert not bobs.delete_room.isVisible()
    click_button(bobs, "close")
    wait(lambda: not settings_shown(bob), what="settings closed by its Close button")
    # The header says the room is private (a lock instead of #, and a tooltip).
    assert bob.main_window.chat.title.text() == "🔒 den"
    assert "private" in bob.main_window.chat.title.toolTip()

    # Back to a member: bob's composer is disabled and says why.
    click_row(settings.members, "bob  (moderator)")
    click(settings.make_member)
    wait(lambda: not bob.main_window.chat.compose.isEnabled(), what="bob's composer disabled")
    assert "only its moderators and owners post" in bob.main_window.chat.compose.placeholderText()
    assert not bob.main_window.chat.send_button.isEnabled()
    wait(lambda: "ann made bob a member" in shown(bob), what="the event line on bob's screen")

    # Kick and Ban ask first (a new-user trial: one click on the wrong row threw someone
    # out); Cancel does nothing.
    click_row(settings.members, "bob")
    click(settings.kick)
    asked = dialog(QMessageBox, "confirm_kick")
    assert asked.text().startswith("Remove bob from 🔒 den?"), asked.text()
    answer_confirm("confirm_kick", yes=False)
    # Ban: bob's den goes away; ann unbans him from the bans list.
    click_row(settings.members, "bob")
    click(settings.ban)
    answer_confirm("confirm_ban")
    wait(lambda: DEN not in bob.state.conversations, what="den gone from bob's list")
    wait(
        lambda: bob.main_window.chat.notice.text() == "You were banned from 🔒 den",
        what="bob told why, with the lock",
    )
    wait(lambda: settings.bans.count() == 1)
    click_row(settings.bans, "bob")
    click(settings.unban)
    wait(lambda: settings.bans.count() == 0)
    wait(lambda: "ann unbanned bob" in shown(ann), what="the unban line")
    assert "ann removed bob" not in shown(ann)  # the cancelled kick

    # Delete (after the confirmation): gone for its owner too.
    click(settings.delete_room)
    answer_confirm("confirm_delete_room")
    wait(lambda: DEN not in ann.state.conversations, what="den deleted")


def test_moderator_deletes_a_members_message(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    create_private_room(ann, "den")
    settings = open_settings(ann)
    type_into(settings.invite_name, "bob")
    click(settings.invite)
    wait(lambda: DEN in bob.state.conversations)
    settings.close()
    open_conversation(bob, DEN)
    send(bob, "spam spam spam")
    wait(lambda: "spam spam spam" in shown(ann))
    right_click_message(ann, "spam spam spam")
    # The owner may delete it, and may block its author as anyone may (a trial found
    # no "Block bob…" in a moderator's menu).
    menu = dialog(QMenu, "message_menu")
    assert {"delete", "block"} <= {a.objectName() for a in menu.actions()}
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message")
    wait(
        lambda: any(m.get("deleted") for m in bob.state.conversation(DEN).messages),
        what="the tombstone on bob's screen",
    )
