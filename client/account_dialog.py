"""Account settings: change the password, the signed-in devices (sign out the others),
export your data to a file, delete the account (confirmed by typing the password).
Opened from the profile dialog; every request is one of docs/protocol.md's account.*."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QVBoxLayout,
)
from shiboken6 import isValid

from chatroom.account_steps import assembled

from . import theme
from .actions import ChatActions
from .blocking import BlockList
from .net import ChatClient
from .ui import button, on_click


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def session_text(session: dict[str, Any]) -> str:
    """'ChatRoom on ann-laptop (Linux) (this device)', its address, then when it signed
    in and was last used ("in use now" for this one), each a short line; a session
    whose login named no device starts with its address."""
    where = session.get("ip") or "unknown address"
    this = " (this device)" if session.get("current") else ""
    signed_in, used = _when(session["created_at"]), _when(session["last_used_at"])
    # This device is in use as you look; the server's time for it may be minutes old.
    times = f"signed in {signed_in} · " + ("in use now" if this else f"last used {used}")
    if session.get("device"):
        return f"{session['device']}{this}\n{where}\n{times}"
    return f"{where}{this}\n{times}"


def write_private(path: str, text: str) -> None:
    """The export holds private messages: readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


class AccountDialog(QDialog):
    accountDeleted = Signal()

    def __init__(
        self,
        client: ChatClient,
        actions: ChatActions,
        parent: Any = None,
        blocks: BlockList | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.chat_actions = actions
        self.blocks = blocks
        self.setWindowTitle("Account settings")
        self.setObjectName("account")
        self.setMinimumWidth(420)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.message = QLabel("")
        self.message.setObjectName("account_message")
        self.message.setWordWrap(True)

        self.old_password = self._password_field("old_password")
        self.new_password = self._password_field("new_password")
        self.new_again = self._password_field("new_again")
        password_box = QGroupBox("Password")
        form = QFormLayout(password_box)
        form.addRow("Current password", self.old_password)
        form.addRow("New password", self.new_password)
        form.addRow("New password again", self.new_again)
        form.addRow("", button("Change password", self.change_password, "change_password"))

        self.sessions = QListWidget()
        self.sessions.setObjectName("sessions")
        # Two short lines per device, wrapped: never a sideways scrollbar (docs/client.md).
        self.sessions.setWordWrap(True)
        self.sessions.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        devices = QGroupBox("Signed-in devices")
        devices_layout = QVBoxLayout(devices)
        devices_layout.addWidget(self.sessions)
        devices_layout.addWidget(
            button("Sign out other devices", self.sign_out_others, "sign_out_others")
        )

        # Whom the user blocks, each with Unblock (client/blocking.py).
        self.blocked = QListWidget()
        self.blocked.setObjectName("blocked_users")
        self.blocked.setMaximumHeight(110)
        blocked_box = QGroupBox("Blocked users")
        blocked_layout = QHBoxLayout(blocked_box)
        blocked_layout.addWidget(self.blocked, 1)
        blocked_layout.addWidget(
            button("Unblock", self.unblock, "unblock", "Unblock the selected user"),
            0,
            Qt.AlignmentFlag.AlignTop,
        )
        # Read receipts (docs/protocol.md, Read markers): off until the user turns them on.
        self.share_receipts = QCheckBox("Share read receipts")
        self.share_receipts.setObjectName("share_receipts")
        self.share_receipts.setToolTip(
            "In private chats, show friends who also share theirs how far you have read"
            " (✓✓ on their messages), and see theirs"
        )
        self.share_receipts.setChecked(actions.state.read_receipts)
        on_click(self.share_receipts, self.switch_receipts)
        actions.state.settingsChanged.connect(self._settings_changed)
        privacy = QGroupBox("Privacy")
        # Its own width, not the row's: a click anywhere on it (text or box) toggles it.
        QVBoxLayout(privacy).addWidget(self.share_receipts, 0, Qt.AlignmentFlag.AlignLeft)

        data = QGroupBox("Your data")
        data_layout = QHBoxLayout(data)
        data_layout.addWidget(button("Export my data…", self.export, "export"))
        data_layout.addStretch(1)
        delete = button("Delete account…", self.ask_delete, "delete_account")
        delete.setStyleSheet(f"color: {theme.colors().error};")
        data_layout.addWidget(delete)

        layout = QVBoxLayout(self)
        layout.addWidget(password_box)
        layout.addWidget(devices)
        layout.addWidget(privacy)
        if blocks is not None:
            layout.addWidget(blocked_box)
            blocks.changed.connect(self.refresh_blocked)
            self.refresh_blocked()
        layout.addWidget(data)
        layout.addWidget(self.message)
        close = QHBoxLayout()
        close.addStretch(1)
        close.addWidget(button("Close", self.accept, "close"))
        layout.addLayout(close)
        self.export_parts: dict[str, Any] = {}
        self.refresh_sessions()

    @staticmethod
    def _password_field(name: str) -> QLineEdit:
        field = QLineEdit()
        field.setObjectName(name)
        field.setEchoMode(QLineEdit.EchoMode.Password)
        return field

    def say(self, text: str, problem: bool = False) -> None:
        color = theme.colors().error if problem else theme.colors().muted
        self.message.setStyleSheet(f"color: {color};")
        self.message.setText(text)

    def _failed(self, reply: dict) -> bool:
        """True when the reply is an error (said in the dialog) or the dialog is gone (a
        reply can come after it closed)."""
        if not isValid(self.message):
            return True
        if reply.get("ok"):
            return False
        self.say(reply["error"]["message"], problem=True)
        return True

    # ------------------------------------------------------------------ blocked users

    def refresh_blocked(self) -> None:
        if self.blocks is None or not isValid(self.blocked):
            return
        self.blocked.clear()
        names = sorted(self.blocks.users, key=str.casefold)
        self.blocked.addItems(names)
        if not names:
            self.blocked.addItem("Nobody. Right-click a user to block them.")
            self.blocked.item(0).setFlags(Qt.ItemFlag.NoItemFlags)

    def unblock(self) -> None:
        item = self.blocked.currentItem()
        if self.blocks is None or item is None or not self.blocks.is_blocked(item.text()):
            self.say("Pick a user in the list first, then click Unblock.", problem=True)
            return
        username = item.text()

        def done(reply: dict) -> None:
            if not self._failed(reply):
                self.say(f"You unblocked {username}.")

        self.blocks.unblock(username, done)

    # ------------------------------------------------------------------ receipts

    def switch_receipts(self) -> None:
        wanted = self.share_receipts.isChecked()

        def done(reply: dict) -> None:
            if self._failed(reply):
                if isValid(self.share_receipts):  # not switched: show it as it is
                    self._settings_changed()
                return
            self.say(
                "Read receipts are on: friends who share theirs see how far you have read."
                if wanted
                else "Read receipts are off."
            )

        self.chat_actions.set_read_receipts(wanted, done)

    def _settings_changed(self) -> None:
        if isValid(self.share_receipts):
            self.share_receipts.setChecked(self.chat_actions.state.read_receipts)

    # ------------------------------------------------------------------ password

    def change_password(self) -> None:
        old, new = self.old_password.text(), self.new_password.text()
        if new != self.new_again.text():
            self.say("The new passwords differ.", problem=True)
            return

        def done(reply: dict) -> None:
            if self._failed(reply):
                return
            for field in (self.old_password, self.new_password, self.new_again):
                field.clear()
            ended = reply["sessions_ended"]
            self.say(f"Password changed; {ended} other device(s) signed out.")
            self.refresh_sessions()

        self.client.request("account.password", {"old_password": old, "new_password": new}, done)

    # ------------------------------------------------------------------ devices

    def refresh_sessions(self) -> None:
        def done(reply: dict) -> None:
            if self._failed(reply):
                return
            self.sessions.clear()
            for session in reply["sessions"]:
                self.sessions.addItem(session_text(session))

        self.client.request("account.sessions", {}, done)

    def sign_out_others(self) -> None:
        def done(reply: dict) -> None:
            if self._failed(reply):
                return
            self.say(f"Signed out {reply['sessions_ended']} other device(s).")
            self.refresh_sessions()

        self.client.request("account.logout_others", {}, done)

    # ------------------------------------------------------------------ export

    def export(self) -> None:
        chooser = QFileDialog(self, "Save your data", "", "JSON (*.json)")
        chooser.setObjectName("export_chooser")
        chooser.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        chooser.setDefaultSuffix("json")
        docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        folder = Path(docs) if Path(docs).is_dir() else Path.home()
        chooser.selectFile(str(folder / "chatroom-export.json"))
        chooser.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        chooser.fileSelected.connect(self._export_to)
        chooser.open()

    def _export_to(self, path: str) -> None:
        """Ask for each part in turn (each reply's `next`), then write the file."""
        parts: dict[str, Any] = {"account": {}, "messages": [], "avatar": None}
        self.say("Exporting…")

        def done(reply: dict) -> None:
            if self._failed(reply):
                return
            if reply["part"] == "account":
                parts["account"] = reply
            elif reply["part"] == "messages":
                parts["messages"] += reply["messages"]
            else:
                parts["avatar"] = reply["avatar"]
            if reply["next"] is not None:
                self.client.request("account.export", reply["next"], done)
                return
            exported = assembled(parts["account"], parts["messages"], parts["avatar"])
            try:
                write_private(path, json.dumps(exported, ensure_ascii=False, indent=2) + "\n")
            except OSError as exc:
                self.say(f"Could not save {path}: {exc.strerror}", problem=True)
                return
            self.say(f"Saved your data ({len(parts['messages'])} messages) to {path}.")

        self.client.request("account.export", {}, done)

    # ------------------------------------------------------------------ delete

    def ask_delete(self) -> None:
        prompt = QInputDialog(self)
        prompt.setObjectName("confirm_delete")
        prompt.setWindowTitle("Delete account")
        # QInputDialog does not wrap its label: the lines are short by hand.
        prompt.setLabelText(
            "This deletes your account, friends and picture for good.\n"
            "Your messages stay with the people you sent them to,\n"
            'shown as from "deleted user".\n\n'
            "Type your password to confirm:"
        )
        prompt.setOkButtonText("Delete account")
        prompt.setTextEchoMode(QLineEdit.EchoMode.Password)
        prompt.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        prompt.textValueSelected.connect(self._delete)
        prompt.open()

    def _delete(self, password: str) -> None:
        if not password:
            return

        def done(reply: dict) -> None:
            if self._failed(reply):
                return
            self.accountDeleted.emit()
            self.accept()

        self.client.request("account.delete", {"password": password}, done)
