"""Account settings in the desktop client, by clicks (tests/clicks.py): from the profile
dialog, change the password, sign out the other devices, export to a file, delete the
account (the friend then sees "deleted user")."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import stat  # noqa: E402

from PySide6.QtWidgets import QDialogButtonBox, QInputDialog  # noqa: E402

from chatroom.protocol import EXPORT_FORMAT  # noqa: E402
from client.conversations import room_key  # noqa: E402
from client.profile_dialog import ProfileDialog  # noqa: E402

from clicks import (  # noqa: E402
    Redraws,
    answer_confirm,
    answer_text,
    befriend,
    choose_file,
    choose_menu_item,
    click,
    click_button,
    click_row,
    dialog,
    open_conversation,
    open_settings,
    right_click_message,
    send,
    shown,
    sign_in,
    sign_up,
    type_into,
    wait,
)
from wire import WireClient  # noqa: E402
from wire import befriend as befriend_by_wire  # noqa: E402

NEW = "battery staple"


def test_change_password_then_sign_in_with_it(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    app, phone = apps("ann"), apps("phone")
    sign_up(app, stack.port, "ann")
    sign_in(phone, stack.port, "ann")
    settings = open_settings(app)
    type_into(settings.old_password, "correct horse")
    type_into(settings.new_password, NEW)
    type_into(settings.new_again, NEW)
    click_button(settings, "change_password")
    wait(lambda: "Password changed" in settings.message.text(), what="password changed")
    # The other device is signed out and told why, in words that say what to do (found
    # by a new user's trial: "Your session ended (this session has ended; ...)").
    wait(lambda: phone.login_window.isVisible(), what="the phone signed out")
    assert phone.login_window.error.text() == (
        "Your password was changed on another device; sign in with the new one."
    )
    click_button(settings, "close")
    click(app.main_window.me_avatar)
    click_button(dialog(ProfileDialog, "profile"), "sign_out")
    wait(lambda: app.login_window.isVisible())
    sign_in(app, stack.port, "ann", NEW)
    assert app.state.me["username"] == "ann"


def test_sign_out_other_devices(apps, make_stack, sqlite_url, monkeypatch):
    stack = make_stack(sqlite_url)
    # two computers: each app names itself after its host (client/net.py, the login's device)
    monkeypatch.setattr("socket.gethostname", lambda: "ann-laptop")
    laptop = apps("laptop")
    monkeypatch.setattr("socket.gethostname", lambda: "ann-phone")
    phone = apps("phone")
    sign_up(laptop, stack.port, "ann")
    sign_in(phone, stack.port, "ann")
    settings = open_settings(laptop)
    wait(lambda: settings.sessions.count() == 2, what="both devices listed")
    rows = sorted(settings.sessions.item(i).text().split("\n") for i in range(2))
    system = platform.system()
    assert [row[0] for row in rows] == [
        f"ChatRoom on ann-laptop ({system}) (this device)",
        f"ChatRoom on ann-phone ({system})",
    ]
    assert rows[0][2].endswith("· in use now") and "· last used 20" in rows[1][2], rows
    click_button(settings, "sign_out_others")
    wait(lambda: "Signed out 1 other" in settings.message.text())
    wait(lambda: settings.sessions.count() == 1, what="one device left")
    wait(lambda: phone.login_window.isVisible(), what="the phone signed out")
    assert "Another of your devices signed this one out" in phone.login_window.error.text()
    assert laptop.main_window.isVisible()
    click_button(settings, "close")


def _same_time(readable: str, ms: int) -> bool:
    """An export's ISO 8601 UTC string names this time in ms."""
    assert readable.endswith("Z"), readable
    return dt.datetime.fromisoformat(readable) == dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def test_export_to_a_file(apps, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url)
    app = apps("ann")
    sign_up(app, stack.port, "ann")
    for text in ("hello from ann", "oops, wrong room"):
        send(app, text)
        wait(lambda t=text: t in shown(app))
    right_click_message(app, "oops, wrong room")
    choose_menu_item("message_menu", "delete")
    answer_confirm("delete_message", yes=True)
    wait(lambda: "oops, wrong room" not in shown(app), what="the message deleted")
    settings = open_settings(app)
    click_button(settings, "export")
    target = tmp_path / "my-data.json"
    choose_file("export_chooser", target)
    wait(lambda: "Saved your data" in settings.message.text(), what="export saved")
    exported = json.loads(target.read_text())
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    click_button(settings, "close")

    # the user's data, not the protocol's: no reply envelope, no paging
    assert not {"id", "ok", "part", "next"} & set(exported)
    assert exported["format"] == EXPORT_FORMAT
    assert exported["account"]["username"] == "ann"
    kept, deleted = exported["messages_sent"]
    assert kept["text"] == "hello from ann" and "deleted" not in kept
    assert deleted["text"] == "" and deleted["deleted"] is True
    # every time in ms has a readable ISO 8601 UTC twin
    assert _same_time(exported["exported_at_iso"], exported["exported_at"])
    assert _same_time(exported["account"]["created_at_iso"], exported["account"]["created_at"])
    assert _same_time(
        exported["sessions"][0]["created_at_iso"], exported["sessions"][0]["created_at"]
    )
    assert _same_time(kept["ts_iso"], kept["ts"])
    assert _same_time(deleted["deleted_at_iso"], deleted["deleted_at"])
    assert exported["sessions"][0]["revoked_at_iso"] is None  # this session is live


def test_delete_account_the_friend_sees_deleted_user(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    ann, bob = apps("ann"), apps("bob")
    sign_up(ann, stack.port, "ann")
    sign_up(bob, stack.port, "bob")
    befriend(ann, bob)
    send(ann, "goodbye everyone")
    wait(lambda: "goodbye everyone" in shown(bob))

    settings = open_settings(ann)
    click_button(settings, "delete_account")
    prompt = dialog(QInputDialog, "confirm_delete")
    ok = prompt.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok)
    assert ok.text() == "Delete account" and prompt.width() < 600  # says what it does
    answer_text("confirm_delete", "wrong password")
    wait(lambda: "not your current password" in settings.message.text(), what="refused")
    assert bob.main_window.side.friends.count() == 1  # nothing changed
    redrawn = Redraws(bob)
    click_button(settings, "delete_account")
    answer_text("confirm_delete", "correct horse")
    wait(lambda: ann.login_window.isVisible(), what="ann signed out")
    assert "deleted" in ann.login_window.error.text()
    wait(lambda: bob.main_window.side.friends.count() == 0, what="ann gone from bob's friends")
    # In bob's open lobby her message is drawn again, from "deleted user"
    wait(lambda: redrawn.of("goodbye everyone"), what="ann's message drawn again")
    senders = [m["from"]["username"] for m in bob.main_window.chat.model.messages]
    assert senders == ["deleted user"]

    # bob, on another computer, sees ann's message from "deleted user"
    again = apps("bob-again")
    sign_in(again, stack.port, "bob")
    open_conversation(again, room_key("lobby"))
    wait(lambda: "goodbye everyone" in shown(again))
    senders = [m["from"]["username"] for m in again.main_window.chat.model.messages]
    assert senders == ["deleted user"]


def test_chats_with_deleted_accounts_open_to_read(apps, make_stack, sqlite_url):
    """Found by a new user's trial: a chat with a friend who deleted their account was
    listed as "deleted user" but opened empty (the client asked for the history of
    someone called "deleted user", who is no one). Each such chat now opens with its
    messages, apart from another deleted account's, can be read but not written in,
    and reading it clears its badge on every device (read.mark by the account's id)."""
    stack = make_stack(sqlite_url)
    with (
        WireClient(stack.port) as ann,
        WireClient(stack.port) as cat,
        WireClient(stack.port) as phone,
    ):
        phone.register_and_login("bob")
        said = {}
        for friend, texts in ((ann, ["from ann"]), (cat, ["from cat, one", "from cat, two"])):
            name = "ann" if friend is ann else "cat"
            friend.register_and_login(name)
            befriend_by_wire(friend, phone)
            said[friend.user["id"]] = texts
            for text in texts:
                friend.call("dm.send", to="bob", text=text)
        for friend in (ann, cat):
            friend.call("account.delete", password="correct horse")

        bob = apps("bob")
        sign_in(bob, stack.port, "bob")
        side = bob.main_window.side.friends
        rows = lambda: [side.item(i) for i in range(side.count())]  # noqa: E731
        wait(lambda: len(rows()) == 2, what="two chats with deleted accounts")
        assert [r.text() for r in rows()] == ["deleted user", "deleted user"]
        for user_id, texts in said.items():
            key = ("dm", f"deleted user #{user_id}")
            assert bob.state.conversation(key).unread == len(texts)
            click_row(side, "deleted user", key)
            wait(lambda k=key: bob.state.active == k, what="the chat open")
            wait(lambda t=texts: shown(bob) == t, what=f"{texts} shown")
            chat = bob.main_window.chat
            assert chat.title.text() == "@ deleted user"
            assert not chat.compose.isEnabled() and not chat.send_button.isEnabled()
            assert "account was deleted" in chat.compose.placeholderText()
        # Read here, so read on the phone too: its sync counts nothing unread there.
        synced = phone.call("sync", cursors={})["conversations"]
        direct = {c["id"] for c in synced if c["kind"] == "direct"}
        assert len(direct) == 2

        def unread_on_the_phone() -> list[int]:
            read = phone.call("sync", cursors={})["read"]
            return [r["unread"] for r in read if r["id"] in direct]

        wait(lambda: unread_on_the_phone() == [0, 0], what="both chats read on the phone")


def test_a_friend_deleting_their_account_while_their_chat_is_open(apps, make_stack, sqlite_url):
    """Found by a new user's trial: the open chat kept the friend's name, offered "send
    them a friend request", and a device that had not loaded its history could not (the
    name finds no one). Now it turns into the deleted account's chat at once, as after
    a restart: "deleted user", its messages from them, read only, history by the id."""
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as ann:
        ann.register_and_login("ann")
        bob = apps("bob")
        sign_up(bob, stack.port, "bob")
        ann.call("friend.request", username="bob")
        click_button(bob.main_window.side, "accept:ann")
        wait(lambda: "ann" in bob.state.friends, what="friends")
        texts = [f"from ann {n}" for n in range(3)]
        for text in texts:
            ann.call("dm.send", to="bob", text=text)
        open_conversation(bob, ("dm", "ann"))
        wait(lambda: shown(bob) == texts, what="the chat")
        # bob's tablet signs in now (all read on the laptop: it fetches only the newest)
        tablet = apps("bob-tablet")
        sign_in(tablet, stack.port, "bob")
        ann.call("account.delete", password="correct horse")

        key = ("dm", f"deleted user #{ann.user['id']}")
        wait(lambda: bob.state.active == key, what="the chat re-keyed")
        chat = bob.main_window.chat
        wait(lambda: chat.title.text() == "@ deleted user", what="the header")
        assert "account was deleted" in chat.compose.placeholderText()
        assert not chat.compose.isEnabled()
        assert {m["from"]["username"] for m in chat.model.messages} == {"deleted user"}
        assert "ann deleted their account" in chat.notice.text()
        # The tablet opens it: the history it had not loaded comes, by the id.
        click_row(tablet.main_window.side.friends, "deleted user", key)
        wait(lambda: tablet.state.active == key, what="the chat open on the tablet")
        wait(lambda: shown(tablet) == texts, what="the history, by the account's id")
