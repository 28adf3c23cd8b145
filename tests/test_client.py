"""The desktop client, used as a person uses it, against the real local stack.

Every action is reached the way a person reaches it: a click on the widget they see,
keys into the field they type in, an answer to the dialog that opens (tests/clicks.py).
No test calls the slot behind a button. Qt runs offscreen; several App instances (each
its own "computer": settings, avatar cache, kept session) talk through real edges.
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

import images

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from client.conversations import FAILED, PENDING, SENT, dm_key, room_key  # noqa: E402
from client.dialogs import RoomDialog, SwitcherDialog  # noqa: E402
from client.net import DISCONNECTED, ONLINE, RECONNECTING  # noqa: E402
from client.profile_dialog import ProfileDialog  # noqa: E402
from client.side_panel import RequestRow  # noqa: E402
from client.widgets import CONTACT_ROLE  # noqa: E402

from clicks import (  # noqa: E402
    answer_confirm,
    answer_text,
    choose_file,
    click,
    click_button,
    dialog,
    fill_login,
    new_app,
    open_conversation,
    press,
    pump,
    send,
    shown,
    sign_in,
    sign_up,
    type_into,
    wait,
)

CLIENT_DIR = Path(__file__).resolve().parents[1] / "client"


@pytest.fixture(autouse=True)
def _no_real_keyring(monkeypatch):
    # The tests' sessions go to files in tmp_path, never the developer's own keyring.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


@pytest.fixture
def apps(qtbot, tmp_path):
    """new(name) -> App; every window is closed at the end."""
    made = []

    def new(name: str):
        app = new_app(tmp_path, name)
        qtbot.addWidget(app.login_window)
        made.append(app)
        return app

    yield new
    for app in made:
        if app.main_window is not None:
            app.main_window.notifier.close()
            app.main_window.close()


def texts(app, key) -> list[str]:
    return [m["text"] for m in app.state.conversation(key).messages]


def befriend(asker, answerer) -> None:
    """`asker` clicks Add friend and types the name; `answerer` clicks Accept."""
    click(asker.main_window.add_friend_button)
    answer_text("add_friend_dialog", answerer.state.me["username"])
    name = asker.state.me["username"]
    click_button(answerer.main_window, f"accept:{name}")
    wait(lambda: answerer.state.me["username"] in asker.state.friends)
    wait(lambda: name in answerer.state.friends)


# ---------------------------------------------------------------------- the pattern


def test_no_button_is_wired_around_on_click():
    """`clicked(bool)`/`triggered(bool)` hand `checked` to the slot; a slot with an optional
    parameter then gets False (the dead "Add friend" button). Views connect buttons only
    through ui.on_click, which calls the action with no arguments."""
    offenders = []
    for path in CLIENT_DIR.glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if (".clicked.connect(" in line or ".triggered.connect(" in line) and (
                path.name != "ui.py"
            ):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_on_click_calls_the_action_with_no_arguments(qtbot):
    """The bug behind the dead buttons, on a real button: `clicked` passes `checked`
    (False) to a slot with an optional parameter. Through on_click it gets nothing."""
    from PySide6.QtWidgets import QPushButton

    from client.ui import on_click

    received = []

    def add_friend(username=None):
        received.append(username)

    plain, wrapped = QPushButton("plain"), QPushButton("wrapped")
    for widget in (plain, wrapped):
        qtbot.addWidget(widget)
        widget.show()
    plain.clicked.connect(add_friend)  # what the views used to do
    on_click(wrapped, add_friend)
    qtbot.mouseClick(plain, Qt.LeftButton)
    qtbot.mouseClick(wrapped, Qt.LeftButton)
    assert received == [False, None]


def test_dark_theme_when_asked(apps, monkeypatch):
    """CHAT_CLIENT_THEME=dark (or a dark system scheme) gives the dark palette."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from client import theme

    monkeypatch.setenv(theme.THEME_ENV, "dark")
    app = apps("night")
    app.show()
    window_color = QApplication.instance().palette().color(QPalette.Window)
    assert window_color.lightness() < 60
    assert theme.colors().name == "dark"
    monkeypatch.setenv(theme.THEME_ENV, "light")
    app.restyle()
    assert QApplication.instance().palette().color(QPalette.Window).lightness() > 200


# ---------------------------------------------------------------------- sign in / out


def test_create_account_sign_out_and_sign_in(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    app = apps("ann")
    sign_up(app, stack.port, "ann")
    assert app.client.state == ONLINE
    assert "Online" in app.main_window.connection.text()

    # Sign out from the profile dialog (click the avatar, then "Sign out").
    click(app.main_window.me_avatar)
    profile = dialog(ProfileDialog, "profile")
    click_button(profile, "sign_out")
    wait(lambda: app.login_window.isVisible() and not app.main_window.isVisible())
    assert "signed out" in app.login_window.error.text()
    wait(lambda: app.client.state == DISCONNECTED)

    # And back in with the password.
    sign_in(app, stack.port, "ann")
    assert app.state.me["username"] == "ann"


def test_wrong_password_error_stays_put(apps, make_stack, sqlite_url):
    """A failed sign-in says so, keeps saying so after the server drops the unused
    connection (its login timeout: not "cannot connect"), does not resize the window,
    and puts the cursor back in the password field."""
    stack = make_stack(sqlite_url, login_timeout_s=1)
    sign_up(apps("real"), stack.port, "real")
    app = apps("guess")
    window = app.login_window
    app.show()
    pump(0.1)
    size = window.size()
    fill_login(app, stack.port, "real", "wrong-password")
    click(window.sign_in_button)
    wait(lambda: "Wrong username or password" in window.error.text())
    assert window.password.hasFocus() and window.password.selectedText() == "wrong-password"
    assert window.size() == size
    # The server closes the connection it was never logged in on after 1 s.
    wait(lambda: app.client.state == DISCONNECTED, timeout=10)
    pump(0.3)
    assert "Wrong username or password" in window.error.text()
    assert "Cannot connect" not in window.error.text()
    assert window.size() == size
    # Trying again with the right password works on a new connection.
    window.password.clear()
    type_into(window.password, "correct horse")
    press(window.password, Qt.Key_Return)
    wait(lambda: app.main_window is not None and app.main_window.isVisible())


def test_unreachable_server_is_explained(apps):
    from harness import free_port

    app = apps("lost")
    app.show()
    fill_login(app, free_port(), "lost")
    click(app.login_window.sign_in_button)
    wait(lambda: "Cannot connect to 127.0.0.1:" in app.login_window.error.text())
    assert app.settings.value("server/host") == "127.0.0.1"


def test_stays_signed_in_until_sign_out(apps, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url)
    first = apps("laptop")
    sign_up(first, stack.port, "stay")
    token_files = list((tmp_path / "laptop-data" / "session").iterdir())
    assert len(token_files) == 1
    assert stat.S_IMODE(token_files[0].stat().st_mode) == 0o600
    first.main_window.close()

    # The app is started again on the same computer: straight in, nothing typed.
    again = apps("laptop")
    again.show()
    wait(lambda: again.main_window is not None and again.main_window.isVisible())
    assert again.state.me["username"] == "stay"

    click(again.main_window.me_avatar)
    click_button(dialog(ProfileDialog, "profile"), "sign_out")
    wait(lambda: again.login_window.isVisible())
    assert not any((tmp_path / "laptop-data" / "session").iterdir())

    # Next start: the sign-in window, and the old token no longer works anywhere.
    third = apps("laptop")
    third.show()
    pump(0.5)
    assert third.main_window is None and third.login_window.isVisible()


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


def test_friend_request_accept_reject_dm_and_remove(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob, carol = apps("alice"), apps("bob"), apps("carol")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "小明")
    sign_up(carol, stack.port, "carol")
    assert bob.main_window.side.friends.count() == 0  # and its hint says what to do
    assert "Add friend" in bob.main_window.side.friends.hint

    # Add friend: click, type the name in the dialog, OK; 小明 clicks Accept.
    befriend(alice, bob)
    assert "You and 小明 are now friends" in alice.main_window.chat.notice.text()
    assert alice.main_window.side.friends.count() == 1 and alice.state.friends["小明"]["online"]

    # Carol asks 小明 (her friend list shows the request waiting), who clicks Reject:
    # Carol is told, and it stays in her activity.
    click(carol.main_window.add_friend_button)
    answer_text("add_friend_dialog", "小明")
    wait(lambda: carol.main_window.side.friends.count() == 1)
    waiting = carol.main_window.side.friends.item(0).data(CONTACT_ROLE)
    assert waiting["name"] == "小明" and waiting["subtitle"] == "friend request sent"
    wait(lambda: "carol wants to be your friend" in bob.main_window.chat.notice.text())
    click_button(bob.main_window, "reject:carol")
    wait(lambda: "小明 rejected your friend request" in carol.main_window.chat.notice.text())
    assert carol.main_window.side.friends.count() == 0
    click(carol.main_window.chat.notice_close)
    assert not carol.main_window.chat.notice_bar.isVisible()
    assert carol.main_window.activity_button.text() == "Activity (1)"
    click(carol.main_window.activity_button)
    assert carol.main_window.activity_dialog.texts()[0].endswith(
        "小明 rejected your friend request"
    )
    assert carol.main_window.activity_button.text() == "Activity"
    bob_activity = [e["text"] for e in bob.state.activity]
    assert "You accepted alice's friend request" in bob_activity
    assert "You rejected carol's friend request" in bob_activity
    assert "You and alice are now friends" not in bob_activity  # said once, not twice
    # New for 小明: the two requests; what he did himself is kept but not "new".
    assert bob.main_window.activity_button.text() == "Activity (2)"

    # A private message: click the friend, type, Enter. Unread on the other side.
    open_conversation(alice, dm_key("小明"))
    send(alice, "just between us")
    wait(lambda: "just between us" in texts(bob, dm_key("alice")))
    assert bob.state.conversation(dm_key("alice")).unread == 1
    assert bob.main_window.windowTitle() == "ChatRoom (1)"
    open_conversation(bob, dm_key("alice"))
    assert bob.state.conversation(dm_key("alice")).unread == 0
    assert bob.main_window.windowTitle() == "ChatRoom"
    assert "just between us" in shown(bob)
    assert "just between us" not in texts(carol, dm_key("alice"))

    # Remove friend: the button in the conversation header, then confirm.
    click(bob.main_window.chat.remove_friend_button)
    answer_confirm("confirm_remove_friend", yes=False)
    assert "alice" in bob.state.friends
    click(bob.main_window.chat.remove_friend_button)
    answer_confirm("confirm_remove_friend")
    wait(lambda: "alice" not in bob.state.friends)
    wait(lambda: "小明" not in alice.state.friends)
    assert bob.state.active == room_key("lobby")
    wait(lambda: "小明 is no longer your friend" in [e["text"] for e in alice.state.activity])

    # The activity list outlives a restart of the app.
    carol.main_window.close()
    again = apps("carol")
    again.show()
    wait(lambda: again.main_window is not None and again.main_window.isVisible())
    click(again.main_window.activity_button)
    assert again.main_window.activity_dialog.texts()[0].endswith(
        "小明 rejected your friend request"
    )


def test_rooms_create_join_members_and_leave(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    rae, sam = apps("rae"), apps("sam")
    sign_up(rae, stack.port, "rae")
    sign_up(sam, stack.port, "sam")
    assert not rae.main_window.chat.leave_button.isVisible()  # nobody leaves the lobby

    # "+": the rooms there are, filtered as you type; a new name can be created.
    click(rae.main_window.side.join_room_button)
    rooms = dialog(RoomDialog, "rooms_dialog")
    type_into(rooms.query, "Book Club")
    wait(lambda: rooms.create_button.isEnabled())
    assert rooms.list.count() == 0 and not rooms.join_button.isEnabled()
    click(rooms.create_button)
    wait(lambda: rae.state.active == room_key("Book Club"))
    assert rae.main_window.chat.title.full_text() == "# Book Club"

    click(sam.main_window.side.join_room_button)
    rooms = dialog(RoomDialog, "rooms_dialog")
    type_into(rooms.query, "book clubb")  # a typo finds nothing (and creates nothing)
    wait(lambda: rooms.listed_for == "book clubb")
    assert rooms.list.count() == 0 and not rooms.join_button.isEnabled()
    for _ in range(len("b")):
        press(rooms.query, Qt.Key_Backspace)
    wait(lambda: rooms.list.count() == 1)
    assert not rooms.create_button.isEnabled()  # the name exists (ignoring case)
    click(rooms.join_button)
    wait(lambda: sam.state.active == room_key("Book Club"))
    send(sam, "first!")
    wait(lambda: "first!" in shown(rae))

    click(rae.main_window.chat.members_button)
    wait(lambda: rae.main_window.chat.members.count() == 2)
    assert {rae.main_window.chat.members.item(i).text() for i in range(2)} == {"rae", "sam"}
    # In a narrow window the member list takes the conversation's place, not a sliver.
    rae.main_window.resize(420, 360)
    wait(lambda: not rae.main_window.chat.view.isVisible())
    assert rae.main_window.chat.members.isVisible()
    rae.main_window.resize(980, 660)
    wait(lambda: rae.main_window.chat.view.isVisible() and rae.main_window.chat.members.isVisible())

    click(sam.main_window.chat.leave_button)
    answer_confirm("confirm_leave_room")
    wait(lambda: room_key("Book Club") not in sam.state.conversations)
    assert sam.state.active == room_key("lobby")
    wait(lambda: rae.main_window.chat.members.count() == 1)


def test_profile_picture_and_status_by_clicking(apps, make_stack, sqlite_url, tmp_path):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice")
    sign_up(bob, stack.port, "bob")
    befriend(alice, bob)
    # A text file renamed .png is refused in the dialog, before any upload.
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    click(alice.main_window.me_avatar)
    profile = dialog(ProfileDialog, "profile")
    click_button(profile, "choose_picture")
    choose_file("picture_chooser", fake)
    wait(lambda: "not an image" in profile.message.text())

    picture = tmp_path / "me.png"
    picture.write_bytes(images.png(640, 480, (30, 160, 90)))
    click_button(profile, "choose_picture")
    choose_file("picture_chooser", picture)
    wait(lambda: profile.image is not None)
    profile.status.clear()
    type_into(profile.status, "out for lunch")
    click_button(profile, "save")
    wait(lambda: alice.state.my_avatar is not None)
    new_hash = alice.state.my_avatar
    wait(lambda: bob.state.friends["alice"]["avatar"] == new_hash)
    wait(lambda: bob.state.friends["alice"]["status"] == "out for lunch")
    wait(lambda: alice.main_window.me_status.full_text() == "out for lunch")
    wait(lambda: (bob.avatars.directory / f"{new_hash}.png").exists())

    # Started again, alice's own picture is hers from the start.
    alice.main_window.close()
    again = apps("alice")
    again.show()
    wait(lambda: again.main_window is not None and again.main_window.isVisible())
    assert again.state.my_avatar == new_hash


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
    contact = rows.item(0).data(CONTACT_ROLE)
    assert contact["unread"] == 3 and contact["subtitle"] == "while you were away 2"
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
    wait(lambda: ("alice in #lobby", "hey @bob look") in bob.main_window.notifier.history)
    wait(lambda: "no mention of bobby here" in texts(bob, room_key("lobby")))
    lobby = bob.state.conversation(room_key("lobby"))
    assert lobby.mentions >= 1
    assert all("bobby" not in body for _title, body in bob.main_window.notifier.history)
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


# ---------------------------------------------------------------------- presence


def test_vanished_friend_goes_offline_with_last_seen(apps, make_stack, sqlite_url):
    """A friend whose computer vanishes (no FIN, nothing more sent) is shown offline
    within the server's idle timeout, with when they were last seen."""
    from wire import WireClient

    stack = make_stack(sqlite_url, idle_timeout_s=2)
    alice = apps("alice")
    sign_up(alice, stack.port, "alice")
    with WireClient(stack.port) as ghost:
        ghost.register_and_login("ghost")
        ghost.call("friend.request", username="alice")
        click_button(alice.main_window, "accept:ghost")
        wait(lambda: alice.state.friends.get("ghost", {}).get("online"))
        # The ghost says nothing more, and its socket stays open: like a closed lid.
        wait(lambda: not alice.state.friends["ghost"]["online"], timeout=10)
        assert alice.client.state == ONLINE  # alice pings, so she stays
        line = alice.main_window.side.friends.item(0).data(CONTACT_ROLE)["subtitle"]
        assert line.startswith("last seen")
        open_conversation(alice, dm_key("ghost"))
        assert alice.main_window.chat.presence_line.full_text().startswith("last seen")


# ---------------------------------------------------------------------- layout


def test_long_status_and_narrow_windows_keep_their_shape(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.port, "alice_with_a_rather_long_name_x")
    sign_up(bob, stack.port, "bob")
    window = alice.main_window
    window.resize(980, 660)
    pump(0.1)
    click(window.me_avatar)
    profile = dialog(ProfileDialog, "profile")
    profile.status.clear()
    type_into(profile.status, "w" * 140)
    click_button(profile, "save")
    wait(lambda: window.me_status.full_text() == "w" * 140)
    pump(0.2)
    assert window.width() <= 980
    assert window.me_status.toolTip() == "w" * 140
    assert window.add_friend_button.geometry().right() <= window.width()

    # A friend request card stays one line; nothing scrolls sideways when narrow.
    click(bob.main_window.add_friend_button)
    answer_text("add_friend_dialog", "alice_with_a_rather_long_name_x")
    for size in ((420, 360), (1600, 1000), (980, 660), (420, 360)):
        window.resize(*size)
        pump(0.1)
        row = wait(lambda: window.findChild(RequestRow, "requestRow"))
        assert row.height() < 2 * 30 + 16, size  # two short lines
        assert window.width() <= max(size[0], window.minimumWidth()), size
        for listing in (window.side.rooms, window.side.friends, window.chat.view):
            assert not listing.horizontalScrollBar().isVisible(), size
        assert window.add_friend_button.geometry().right() <= window.width(), size


# ---------------------------------------------------------------------- recovery


def test_connection_loss_recovers_with_nothing_lost(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url, edges=2)
    alice, bob = apps("alice"), apps("bob")
    sign_up(alice, stack.edge_ports[0], "alice")
    sign_up(bob, stack.edge_ports[1], "bob")
    send(bob, "before the outage")
    wait(lambda: "before the outage" in shown(alice))

    stack.kill("edge#0", signal.SIGKILL)  # Alice's server process dies
    wait(lambda: alice.client.state == RECONNECTING)
    wait(lambda: "Reconnecting" in alice.main_window.connection.text())

    # While Alice is cut off: Bob keeps talking, Alice types a message.
    for i in range(5):
        send(bob, f"while you were away {i}")
    send(alice, "typed while offline")
    pending = alice.state.conversation(room_key("lobby")).messages[-1]
    assert pending["text"] == "typed while offline" and pending["state"] == PENDING

    stack.restart("edge#0")
    wait(lambda: alice.client.state == ONLINE, timeout=30)
    expected = [f"while you were away {i}" for i in range(5)]
    wait(lambda: all(t in shown(alice) for t in expected))
    wait(lambda: "typed while offline" in shown(bob))
    lobby = alice.state.conversation(room_key("lobby")).messages
    assert [m["text"] for m in lobby].count("typed while offline") == 1
    assert all(m["state"] == SENT for m in lobby)
    seqs = [m["seq"] for m in lobby]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_huge_backlog_is_fetched_in_pages_without_reconnecting(apps, make_stack, sqlite_url):
    """A lobby full of long control-character messages (each JSON-escapes to ~24 KB):
    the client pages sync and history within its frame cap and never loops."""
    from wire import WireClient

    stack = make_stack(sqlite_url)
    reader = apps("reader")
    sign_up(reader, stack.port, "reader")
    reader.main_window.close()  # quits; starts again on the same computer below
    noisy = "\x01\x02\x1b" * 1332  # 3,996 characters, ~24 KB as JSON
    with WireClient(stack.port) as writer:
        writer.register_and_login("writer")
        for i in range(150):
            writer.call("room.send", room="lobby", text=f"{i:03d}{noisy}")
    back = apps("reader")
    back.show()
    wait(lambda: back.main_window is not None and back.main_window.isVisible())
    lobby = back.state.conversation(room_key("lobby"))
    wait(lambda: len(lobby.messages) >= 150, timeout=30)
    assert [m["text"][:3] for m in lobby.messages[-150:]] == [f"{i:03d}" for i in range(150)]
    assert back.client.state == ONLINE and back.client._attempt == 0


def test_send_refused_by_server_is_marked_failed(apps, make_stack, sqlite_url):
    stack = make_stack(sqlite_url, max_text_chars=10)
    app = apps("dora")
    sign_up(app, stack.port, "dora")
    # The window refuses an over-long text up front and says why.
    send(app, "y" * 11)
    assert "at most 10 characters" in app.main_window.chat.notice.text()
    assert app.main_window.chat.counter.text() == "11 / 10"


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


def test_tls_login_verifies_the_server(apps, make_stack, sqlite_url, tmp_path):
    """Over the edge's TLS port: refused without the server's CA (system CAs do not know
    it), then works with the CA file, and the whole session runs encrypted."""
    from tls import make_certificates

    certs = make_certificates(tmp_path / "tls")
    stack = make_stack(sqlite_url, **certs.settings())
    app = apps("tina")
    window = app.login_window
    app.show()
    fill_login(app, stack.settings.tls_port, "tina")
    click(window.tls)
    click(window.register_button)
    wait(lambda: "Cannot connect securely" in window.error.text())
    assert "certificate" in window.error.text().lower()

    type_into(window.ca_file, str(certs.ca))
    click(window.register_button)
    wait(lambda: app.main_window is not None and app.main_window.isVisible())
    assert app.settings.value("server/tls") == "true"
    send(app, "sent over TLS")
    wait(lambda: app.state.conversation(room_key("lobby")).messages[-1]["state"] == SENT)


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
