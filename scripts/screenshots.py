"""Take the client screenshots in docs/screenshots/ by clicking through the real app
against a real local server, in real windows on a virtual X screen.

    .venv/bin/python scripts/screenshots.py            # light and dark, three sizes

Starts Xvfb when there is no display (Debian: apt-get install xvfb), the services
locally (SQLite in a temporary folder), and drives three app instances with
tests/clicks.py (mouse clicks on the widgets, keys into the fields, dialogs answered):
sign-up, lobby chat in Chinese and English, a friend request, a private chat, a room,
a room's settings with roles and its announcement mode, an avatar change, the
activity list, the switcher, someone typing, a reply and an edit, the account
settings and its blocked users, a mention (badge and highlight), read receipts, the
multi-line edit dialog, a refused message's menu (Send again / Remove), a chat with a
former friend (compose disabled, saying why), a lost connection. Each view is
saved at 420×360, 980×660 and 1600×1000, in the light and the dark theme
(CHAT_CLIENT_THEME, which otherwise follows the system), as
docs/screenshots/<theme>-<width>x<height>-<view>.png, plus single-size dialogs.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
SIZES = ((420, 360), (980, 660), (1600, 1000))
THEMES = ("light", "dark")


def start_display() -> subprocess.Popen | None:
    """A virtual screen for real X11 windows, unless one is already there."""
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return None
    if shutil.which("Xvfb") is None:
        sys.exit("no display: install xvfb (apt-get install xvfb), or set DISPLAY")
    display = ":97"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
    end = time.monotonic() + 10
    while not socket.exists():
        if time.monotonic() > end or xvfb.poll() is not None:
            sys.exit("Xvfb did not start")
        time.sleep(0.05)
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return xvfb


def portrait(color: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 300), (245, 240, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((140, 50, 260, 170), fill=color)
    draw.ellipse((90, 170, 310, 400), fill=color)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def main() -> None:
    themes = sys.argv[1:] or list(THEMES)
    xvfb = start_display()
    try:
        for theme in themes:
            # One process per theme: the look is chosen once at start, as a person's
            # system setting would be.
            env = {**os.environ, "CHAT_CLIENT_THEME": theme}
            subprocess.run([sys.executable, __file__, "--run", theme], env=env, check=True)
    finally:
        if xvfb is not None:
            xvfb.terminate()
    print(f"screenshots written to {OUT}")


def run(theme: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from chatroom.localstack import Stack, free_port

    qapp = QApplication(sys.argv)
    qapp.setApplicationName("ChatRoom")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "make-tls-cert.sh"), str(tmp / "tls"), "127.0.0.1"],
            check=True,
            capture_output=True,
        )
        tls = {
            "tls_port": free_port(),
            "tls_cert_file": tmp / "tls" / "server.pem",
            "tls_key_file": tmp / "tls" / "server.key",
        }
        stack = Stack(tmp, f"sqlite:///{tmp}/chat.db", **tls).start()
        try:
            Tour(qapp, stack, tmp, theme, Qt).run()
        finally:
            stack.stop()


class Tour:
    def __init__(self, qapp, stack, tmp: Path, theme: str, qt) -> None:
        import clicks

        self.c = clicks
        self.qapp, self.stack, self.tmp, self.theme, self.Qt = qapp, stack, tmp, theme, qt

    def grab(self, widget, name: str) -> None:
        # On top of the other apps' windows (they share the screen): what a person
        # looking at this window sees.
        widget.raise_()
        widget.activateWindow()
        self.c.pump(0.4)
        # What the screen shows (a real window on the X server); grab() where the
        # platform cannot (offscreen).
        shot = widget.screen().grabWindow(widget.winId())
        if shot.isNull() or shot.width() < 10:
            shot = widget.grab()
        shot.save(str(OUT / name))

    def save(self, window, view: str, sizes=SIZES) -> None:
        """The main window at each size."""
        for width, height in sizes:
            window.resize(width, height)
            self.grab(window, f"{self.theme}-{width}x{height}-{view}.png")

    def save_dialog(self, widget, view: str) -> None:
        self.grab(widget, f"{self.theme}-{view}.png")

    def save_with_menu(self, window, view: str) -> None:
        """The window with a pop-up menu open over it: the screen's pixels where the
        window is (the menu is a window of its own), without raising the window, which
        would close the menu."""
        self.c.pump(0.4)
        frame = window.frameGeometry()
        shot = window.screen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
        if shot.isNull() or shot.width() < 10:  # offscreen: the window alone
            shot = window.grab()
        width, height = window.width(), window.height()
        shot.save(str(OUT / f"{self.theme}-{width}x{height}-{view}.png"))

    def run(self) -> None:
        c, Qt = self.c, self.Qt
        from PySide6.QtWidgets import QMenu

        from client.conversations import dm_key, room_key
        from client.dialogs import RoomDialog, SwitcherDialog
        from client.profile_dialog import ProfileDialog

        port = self.stack.port
        ming, alice, sam = (c.new_app(self.tmp, n) for n in ("ming", "alice", "sam"))

        # The sign-in window, filled in, then a wrong password.
        ming.show()
        c.fill_login(ming, port, "ming")
        ming.login_window.username.clear()
        c.type_into(ming.login_window.username, "小明")
        self.save_dialog(ming.login_window, "login")

        c.sign_up(ming, port, "小明")
        c.sign_up(alice, port, "alice")
        c.sign_up(sam, port, "sam")
        for app, color, status in (
            (ming, (220, 90, 60), "在写代码 ☕"),
            (alice, (60, 120, 200), "on holiday 🏖 until Monday, answering slowly"),
        ):
            picture = self.tmp / f"{app.state.me['username']}.png"
            picture.write_bytes(portrait(color))
            c.click(app.main_window.me_avatar)
            profile = c.dialog(ProfileDialog, "profile")
            c.click_button(profile, "choose_picture")
            c.choose_file("picture_chooser", picture)
            c.wait(lambda profile=profile: profile.image is not None)
            profile.status.clear()
            c.type_into(profile.status, status)
            if app is ming:
                self.save_dialog(profile, "profile")
            c.click_button(profile, "save")
            c.wait(lambda app=app: app.state.my_avatar is not None)

        for app, text in (
            (alice, "Hi everyone! Is the new server up? 🎉"),
            (alice, "Messages, history and avatars all work here."),
            (ming, "大家好！服务器已经上线了，欢迎来聊天。"),
            (sam, "Morning! @alice did the upgrade go well?"),
            (ming, "试试私聊和好友功能吧 😀"),
        ):
            c.send(app, text)
            c.wait(
                lambda app=app: (
                    app.state.conversation(room_key("lobby")).messages[-1]["state"] == "sent"
                )
            )

        # Alice asks 小明 to be friends; his window shows the request.
        c.click(alice.main_window.add_friend_button)
        c.answer_text("add_friend_dialog", "小明")
        c.button(ming.main_window, "accept:alice")
        c.click(sam.main_window.add_friend_button)
        c.answer_text("add_friend_dialog", "小明")
        c.button(ming.main_window, "accept:sam")
        self.save(ming.main_window, "friend-request")
        c.click_button(ming.main_window, "accept:alice")
        c.click_button(ming.main_window, "reject:sam")
        c.wait(lambda: "小明" in alice.state.friends)
        c.wait(lambda: any("rejected" in e["text"] for e in sam.state.activity))
        c.click(sam.main_window.activity_button)
        self.save_dialog(sam.main_window.activity_dialog, "activity")
        sam.main_window.activity_dialog.close()

        # The lobby, then a private conversation (with unread on the other side).
        c.click_row(alice.main_window.side.rooms, "lobby")
        self.save(alice.main_window, "lobby")
        c.open_conversation(ming, dm_key("alice"))
        c.send(ming, "周末一起去爬山吗？")
        c.wait(
            lambda: (
                "周末一起去爬山吗？"
                in [m["text"] for m in alice.state.conversation(dm_key("小明")).messages]
            )
        )
        self.save(alice.main_window, "unread")
        c.open_conversation(alice, dm_key("小明"))
        c.send(alice, "Sure! Saturday morning works for me.")
        c.send(alice, "I'll bring the map 🗺")
        c.wait(lambda: len(c.shown(ming)) == 3)
        self.save(alice.main_window, "private")
        # 小明 starts a reply: alice sees him typing under the conversation.
        c.type_into(ming.main_window.chat.compose, "OK, see you at 8")
        c.wait(lambda: not alice.main_window.chat.typing_line.isHidden())
        self.save(alice.main_window, "typing", sizes=((980, 660),))
        ming.main_window.chat.compose.clear()
        c.wait(lambda: alice.main_window.chat.typing_line.isHidden())

        # A room with its member list.
        c.click(alice.main_window.side.join_room_button)
        rooms = c.dialog(RoomDialog, "rooms_dialog")
        c.type_into(rooms.query, "Book Club 读书会")
        c.wait(lambda: rooms.create_button.isEnabled())
        c.click(rooms.create_button)
        c.wait(lambda: alice.state.active == room_key("Book Club 读书会"))
        c.click(sam.main_window.side.join_room_button)
        rooms = c.dialog(RoomDialog, "rooms_dialog")
        c.type_into(rooms.query, "book")
        c.wait(lambda: rooms.list.count() == 1)
        self.save_dialog(rooms, "rooms")
        c.click(rooms.join_button)
        c.wait(lambda: sam.state.active == room_key("Book Club 读书会"))
        c.send(sam, "What are we reading next?")
        c.wait(lambda: "What are we reading next?" in c.shown(alice))
        c.click(alice.main_window.chat.members_button)
        c.wait(lambda: alice.main_window.chat.members.count() == 2)
        self.save(alice.main_window, "room-members")
        c.click(alice.main_window.chat.members_button)

        # Its owner's settings: sam made a moderator, a topic, 小明 invited, then
        # announcement mode, in which 小明 (a member) sees why he cannot post.
        from client.room_settings import RoomSettingsDialog

        book = room_key("Book Club 读书会")
        c.click(alice.main_window.chat.settings_button)
        settings = c.dialog(RoomSettingsDialog, "room_settings")
        c.wait(lambda: settings.members.count() == 2)
        c.click_row(settings.members, "sam")
        c.click(settings.make_moderator)
        c.wait(lambda: sam.state.conversation(book).role == "moderator")
        c.type_into(settings.topic, "This month: Three-Body Problem")
        c.click(settings.save_topic)
        c.type_into(settings.invite_name, "小明")
        c.click(settings.invite)
        c.wait(lambda: book in ming.state.conversations)
        c.click(settings.announce)
        c.wait(lambda: ming.state.conversation(book).announce)
        c.wait(lambda: settings.members.count() == 3)
        self.save_dialog(settings, "room-settings")
        settings.close()
        c.open_conversation(ming, book)
        c.wait(lambda: not ming.main_window.chat.compose.isEnabled())
        c.wait(lambda: "What are we reading next?" in c.shown(ming))
        self.save(ming.main_window, "room-announce", sizes=((980, 660),))

        # Ctrl+K: the switcher.
        c.press(alice.main_window.chat.compose, Qt.Key_K, Qt.ControlModifier)
        switcher = c.dialog(SwitcherDialog, "switcher")
        c.type_into(switcher.query, "l")
        self.save_dialog(switcher, "switcher")
        c.press(switcher.query, Qt.Key_Escape)

        # Right-click a message: reply to 小明's, and correct one's own.
        c.open_conversation(alice, room_key("lobby"))
        c.open_conversation(ming, room_key("lobby"))
        c.right_click_message(alice, "试试私聊和好友功能吧 😀")
        c.choose_menu_item("message_menu", "reply")
        c.send(alice, "Will do, see you there!")
        c.wait(lambda: "Will do, see you there!" in c.shown(ming))
        c.right_click_message(alice, "Messages, history and avatars all work here.")
        c.choose_menu_item("message_menu", "edit")
        # The editor, a second line started (Enter; Ctrl+Enter or Save saves).
        from PySide6.QtWidgets import QDialog, QPlainTextEdit

        editor = c.dialog(QDialog, "edit_message")
        field = editor.findChild(QPlainTextEdit)
        field.clear()
        c.type_into(field, "Messages, history, avatars and edits all work here.")
        c.press(field, Qt.Key_Return)
        c.type_into(field, "Edits keep every line.")
        self.save_dialog(editor, "edit-message")
        c.answer_lines("edit_message", "Messages, history, avatars and edits all work here.")
        c.wait(lambda: "Messages, history, avatars and edits all work here." in c.shown(ming))
        self.save(ming.main_window, "reply-edit", sizes=((980, 660),))

        # The account settings: password, signed-in devices, export, delete.
        from client.account_dialog import AccountDialog

        c.click(sam.main_window.me_avatar)
        c.click_button(c.dialog(ProfileDialog, "profile"), "account_settings")
        settings = c.dialog(AccountDialog, "account")
        c.wait(lambda: settings.sessions.count() > 0)
        self.save_dialog(settings, "account")
        # With someone blocked: the Blocked users list, one picked for Unblock.
        from wire import WireClient

        with WireClient(self.stack.port) as pest:
            pest.register_and_login("spam_bot_42")
            sam.state.blocks.block("spam_bot_42", lambda _reply: None)
            c.wait(lambda: sam.state.blocks.is_blocked("spam_bot_42"))
        c.click_row(settings.blocked, "spam_bot_42")
        self.save_dialog(settings, "blocked-users")
        c.click_button(settings, "close")

        # Mentions: alice hears the lobby only when mentioned; sam mentions her while
        # she is in another conversation (the badge), then she opens it (the highlight).
        c.open_conversation(alice, room_key("lobby"))
        c.choose_notify_level(alice, "mentions")
        c.open_conversation(alice, dm_key("小明"))
        c.open_conversation(sam, room_key("lobby"))
        c.send(sam, "Anyone seen the projector remote?")
        c.send(sam, "@alice could you bring the book list on Friday?")
        lobby = alice.state.conversation(room_key("lobby"))
        c.wait(lambda: lobby.mentions == 1 and lobby.unread == 2)
        self.save(alice.main_window, "mention-badge", sizes=((980, 660),))
        c.open_conversation(alice, room_key("lobby"))
        self.save(alice.main_window, "mentions", sizes=((980, 660),))

        # Read receipts: both share them (account settings), so alice sees ✓✓ on what
        # 小明 has read and ✓ on what he has not yet.
        for app in (ming, alice):
            settings = c.open_settings(app)
            c.click(settings.share_receipts)
            c.wait(lambda s=settings: "Read receipts are on" in s.message.text())
            if app is alice:
                self.save_dialog(settings, "account-receipts")
            c.click_button(settings, "close")
        c.open_conversation(alice, dm_key("小明"))
        dm = alice.state.conversation(dm_key("小明"))
        c.open_conversation(ming, dm_key("alice"))  # 小明 looks: what alice sent is read
        c.focus_window(ming.main_window)
        c.wait(lambda: (dm.peer_read_seq or 0) >= dm.last_seq)
        c.open_conversation(ming, room_key("lobby"))  # and looks away
        c.focus_window(alice.main_window)
        c.send(alice, "Also: shall we ask sam?")
        c.wait(lambda: dm.messages[-1]["state"] == "sent")
        self.save(alice.main_window, "receipts", sizes=((980, 660),))

        # A reply to a message its author deletes meanwhile: the server refuses it, it
        # stays in red with the reason; right-click: Send again or Remove.
        c.open_conversation(alice, room_key("lobby"))
        c.open_conversation(sam, room_key("lobby"))
        c.send(sam, "Who has the projector remote?")
        c.wait(lambda: "Who has the projector remote?" in c.shown(alice))
        c.right_click_message(alice, "Who has the projector remote?")
        c.choose_menu_item("message_menu", "reply")
        c.right_click_message(sam, "Who has the projector remote?")
        c.choose_menu_item("message_menu", "delete")
        c.answer_confirm("delete_message")
        c.wait(
            lambda: any(
                m.get("deleted") for m in alice.state.conversation(room_key("lobby")).messages
            )
        )
        c.send(alice, "I think it is in the drawer")
        c.wait(
            lambda: alice.state.conversation(room_key("lobby")).messages[-1]["state"] == "failed"
        )
        alice.main_window.resize(980, 660)
        c.focus_window(alice.main_window)
        c.pump(0.3)
        # Left of the bubble (ours are on the right): the menu opens beside it.
        c.right_click_message(alice, "I think it is in the drawer", across=0.25)
        c.dialog(QMenu, "failed_menu")
        self.save_with_menu(alice.main_window, "failed-menu")
        c.choose_menu_item("failed_menu", "discard")

        # A friend no longer: sam and alice were friends, alice removed him; his chat
        # with her stays to read, its compose box disabled saying why.
        c.click(sam.main_window.add_friend_button)
        c.answer_text("add_friend_dialog", "alice")
        c.click_button(alice.main_window, "accept:sam")
        c.wait(lambda: "alice" in sam.state.friends)
        c.open_conversation(sam, dm_key("alice"))
        c.send(sam, "Thanks for the invite to the book club!")
        c.focus_window(alice.main_window)  # she reads it
        c.open_conversation(alice, dm_key("sam"))
        c.wait(lambda: "Thanks for the invite to the book club!" in c.shown(alice))
        c.wait(lambda: alice.state.conversation(dm_key("sam")).unread == 0)
        c.click(alice.main_window.chat.remove_friend_button)
        c.answer_confirm("confirm_remove_friend")
        c.wait(lambda: "alice" not in sam.state.friends)
        c.click(alice.main_window.chat.notice_close)  # her "no longer your friend" banner
        c.open_conversation(sam, dm_key("alice"))
        c.wait(lambda: not sam.main_window.chat.compose.isEnabled())
        self.save(sam.main_window, "former-friend", sizes=((980, 660), (420, 360)))

        # A private room (🔒 in the list) that 小明 creates, and a chat with a friend
        # who has since deleted their account: listed as "deleted user", read only.
        c.click(ming.main_window.side.join_room_button)
        rooms = c.dialog(RoomDialog, "rooms_dialog")
        c.type_into(rooms.query, "Family")
        c.wait(lambda: rooms.create_button.isEnabled())
        c.click(rooms.private)
        c.click(rooms.create_button)
        c.wait(lambda: ming.state.active == room_key("Family"))
        c.send(ming, "Only the family sees this room.")
        with WireClient(self.stack.port) as pal:
            pal.register_and_login("old_pal", "correct horse battery")
            pal.call("friend.request", username="小明")
            c.click_button(ming.main_window, "accept:old_pal")
            c.wait(lambda: "old_pal" in ming.state.friends)
            pal.call("dm.send", to="小明", text="I am closing this account, take care!")
            c.wait(lambda: dm_key("old_pal") in ming.state.conversations)
            pal.call("account.delete", password="correct horse battery")
        c.wait(lambda: "old_pal" not in ming.state.friends)
        deleted = next(k for k in ming.state.conversations if "deleted user" in k[1])
        c.click_row(ming.main_window.side.friends, "deleted user", deleted)
        c.wait(lambda: ming.state.active == deleted)
        c.wait(lambda: not ming.main_window.chat.compose.isEnabled())
        self.save(ming.main_window, "deleted-account", sizes=((980, 660),))

        # The connection is lost: the state is shown, typed messages wait.
        c.open_conversation(alice, dm_key("小明"))
        self.stack.kill("edge#0")
        c.wait(lambda: alice.client.state == "reconnecting")
        c.send(alice, "This one waits until we are back online.")
        self.save(alice.main_window, "reconnecting", sizes=((980, 660),))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run(sys.argv[2])
    else:
        main()
