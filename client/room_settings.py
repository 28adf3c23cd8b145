"""A room's settings and members: the topic, announcement mode, who is in it with their
role, invitations, kicks, bans and roles, deleting the room. Everyone sees it; the
controls are shown by the viewer's role (moderators: topic, announcement mode, invite,
kick, ban, unban; owners also roles and delete), and the server decides anyway
(docs/protocol.md, "Rooms: roles and moderation"). Changes arrive back as `room.event`
pushes, which refresh this dialog through ChatState's signals."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from chatroom.protocol import TOPIC_CHARS

from .actions import ChatActions
from .conversations import moderates, room_label
from .state import ChatState
from .ui import HintListWidget, button, confirm, on_click

ROLE_NAMES = {"owner": "owner", "moderator": "moderator", "member": ""}


class RoomSettingsDialog(QDialog):
    def __init__(
        self,
        state: ChatState,
        actions: ChatActions,
        key: tuple[str, str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("room_settings")
        self.state, self.chat_actions, self.key = state, actions, key
        self.room = key[1]
        self.label = room_label(state.conversation(key))  # "#lobby", "🔒 Family"
        self.setWindowTitle(f"{self.label}: settings and members")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.showing = True  # replies that come after the close are dropped

        self.about = QLabel()
        self.about.setObjectName("about_room")
        self.topic = QLineEdit()
        self.topic.setObjectName("topic")
        self.topic.setMaxLength(TOPIC_CHARS)
        self.topic.setPlaceholderText("No topic")
        self.save_topic = button("Set topic", self._set_topic, "save_topic")
        self.announce = QCheckBox("Announcement only: only moderators and owners post")
        self.announce.setObjectName("announce")
        on_click(self.announce, self._set_announce)

        self.members = HintListWidget()
        self.members.setObjectName("room_members")
        self.members.hint = "Loading members…"
        self.kick = button("Kick", lambda: self._on_member("room.kick"), "kick")
        self.ban = button("Ban", lambda: self._on_member("room.ban"), "ban")
        self.make_moderator = button(
            "Make moderator", lambda: self._set_role("moderator"), "make_moderator"
        )
        self.make_member = button("Make member", lambda: self._set_role("member"), "make_member")
        self.make_owner = button("Make owner", lambda: self._set_role("owner"), "make_owner")
        self.invite_name = QLineEdit()
        self.invite_name.setObjectName("invite_name")
        self.invite_name.setPlaceholderText("Username to invite")
        self.invite = button("Invite", self._invite, "invite")
        self.bans = HintListWidget()
        self.bans.setObjectName("bans")
        self.bans.hint = "Nobody is banned."
        self.bans.setMaximumHeight(90)
        self.unban = button("Unban", self._unban, "unban")
        self.delete_room = button("Delete room…", self._ask_delete, "delete_room")
        self.message = QLabel("")
        self.message.setObjectName("settings_message")
        self.message.setWordWrap(True)

        topic_row = QHBoxLayout()
        topic_row.addWidget(self.topic, 1)
        topic_row.addWidget(self.save_topic)
        member_buttons = QGridLayout()
        for n, widget in enumerate(
            (self.kick, self.ban, self.make_moderator, self.make_member, self.make_owner)
        ):
            member_buttons.addWidget(widget, n // 3, n % 3)
        invite_row = QHBoxLayout()
        invite_row.addWidget(self.invite_name, 1)
        invite_row.addWidget(self.invite)
        bans_row = QHBoxLayout()
        bans_row.addWidget(self.bans, 1)
        bans_row.addWidget(self.unban, 0, Qt.AlignmentFlag.AlignTop)
        self.moderation = QWidget()  # what only moderators and owners see
        moderation = QVBoxLayout(self.moderation)
        moderation.setContentsMargins(0, 0, 0, 0)
        moderation.addLayout(member_buttons)
        moderation.addLayout(invite_row)
        moderation.addWidget(QLabel("Banned"))
        moderation.addLayout(bans_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.about)
        layout.addLayout(topic_row)
        layout.addWidget(self.announce)
        layout.addWidget(QLabel("Members"))
        layout.addWidget(self.members, 1)
        layout.addWidget(self.moderation)
        layout.addWidget(self.message)
        bottom = QHBoxLayout()
        bottom.addWidget(self.delete_room)
        bottom.addStretch(1)
        bottom.addWidget(button("Close", self.close, "close"))
        layout.addLayout(bottom)
        self.resize(460, 560)

        state.membersChanged.connect(self._members_changed)
        state.roomChanged.connect(self._room_changed)
        state.conversationsChanged.connect(self._still_in)
        self.members.currentItemChanged.connect(lambda *_: self._enable())
        self.bans.currentItemChanged.connect(lambda *_: self._enable())
        self.refresh()
        self.chat_actions.load_members(key)

    # ------------------------------------------------------------------ showing

    def _members_changed(self, key: Any) -> None:
        if key == self.key:
            self.refresh_members()

    def _room_changed(self, key: Any) -> None:
        if key == self.key:
            self.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.showing = False
        super().closeEvent(event)

    def _still_in(self) -> None:
        if self.key not in self.state.conversations:  # kicked, banned, deleted, left
            self.close()

    def refresh(self) -> None:
        conv = self.state.conversation(self.key)
        mod, owner = moderates(conv), conv.role == "owner"
        kind = "Private room" if conv.visibility == "private" else "Public room"
        article = "an" if conv.role == "owner" else "a"
        self.about.setText(f"{kind} · you are {article} {conv.role}")
        if not self.topic.hasFocus():
            self.topic.setText(conv.topic)
        self.topic.setReadOnly(not mod)
        self.save_topic.setVisible(mod)
        self.announce.setChecked(conv.announce)
        self.announce.setEnabled(mod)
        self.moderation.setVisible(mod)
        for widget in (self.make_moderator, self.make_member, self.make_owner):
            widget.setVisible(owner)
        self.delete_room.setVisible(owner and self.room != "lobby")
        self.refresh_members()
        if mod:
            self._load_bans()

    def refresh_members(self) -> None:
        chosen = self._chosen()
        self.members.clear()
        members = self.state.conversation(self.key).members or []
        for member in sorted(members, key=lambda m: m["username"].casefold()):
            role = ROLE_NAMES.get(member.get("role", "member"), "")
            item = QListWidgetItem(
                f"{member['username']}  ({role})" if role else member["username"]
            )
            item.setData(Qt.ItemDataRole.UserRole, member["username"])
            self.members.addItem(item)
            if member["username"] == chosen:
                self.members.setCurrentItem(item)
        self._enable()

    def _enable(self) -> None:
        picked = self._chosen() is not None and self._chosen() != self.state.me.get("username")
        for widget in (self.kick, self.ban, self.make_moderator, self.make_member, self.make_owner):
            widget.setEnabled(picked)
        self.unban.setEnabled(self.bans.currentItem() is not None)

    def _chosen(self) -> str | None:
        item = self.members.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def _load_bans(self) -> None:
        def listed(reply: dict[str, Any]) -> None:
            if not reply.get("ok") or not self.showing:
                return
            self.bans.clear()
            for banned in reply["bans"]:
                item = QListWidgetItem(banned["username"])
                item.setData(Qt.ItemDataRole.UserRole, banned["username"])
                self.bans.addItem(item)
            self._enable()

        self.chat_actions.moderate("room.bans", {"room": self.room}, listed)

    # ------------------------------------------------------------------ acting

    def _ask(self, op: str, fields: dict[str, Any], done_text: str) -> None:
        def done(reply: dict[str, Any]) -> None:
            if not self.showing:
                return
            if reply.get("ok"):
                self.message.setText(done_text)
                if op in ("room.ban", "room.unban"):
                    self._load_bans()
            else:
                self.refresh()  # back to what the server has (e.g. the checkbox)
                self.message.setText(reply["error"]["message"])

        self.message.setText("")
        self.chat_actions.moderate(op, {"room": self.room, **fields}, done)

    def _on_member(self, op: str) -> None:
        """Kick or ban the chosen member, after a confirmation: one click on the wrong
        row must not throw someone out (a new-user trial)."""
        name = self._chosen()
        if not name:
            return
        private = self.state.conversation(self.key).visibility == "private"
        if op == "room.kick":
            title, yes, name_of_box = "Remove member", "Remove", "confirm_kick"
            ask = f"Remove {name} from {self.label}?"
            after = " They can come back if invited again." if private else " They can join again."
            did = "removed from"
        else:
            title, yes, name_of_box = "Ban member", "Ban", "confirm_ban"
            ask = f"Ban {name} from {self.label}?"
            after = " They cannot come back until a moderator unbans them."
            did = "banned from"
        confirm(
            self,
            title,
            ask + after,
            yes,
            lambda: self._ask(op, {"username": name}, f"{name} was {did} {self.label}"),
            name_of_box,
        )

    def _set_role(self, role: str) -> None:
        name = self._chosen()
        if name:
            self._ask("room.set_role", {"username": name, "role": role}, f"{name} is now {role}")

    def _invite(self) -> None:
        name = self.invite_name.text().strip()
        if name:
            self.invite_name.clear()
            self._ask("room.invite", {"username": name}, f"{name} was added to {self.label}")

    def _unban(self) -> None:
        item = self.bans.currentItem()
        if item is not None:
            name = item.data(Qt.ItemDataRole.UserRole)
            self._ask("room.unban", {"username": name}, f"{name} may come back")

    def _set_topic(self) -> None:
        self._ask("room.update", {"topic": self.topic.text().strip()}, "Topic set")

    def _set_announce(self) -> None:
        on = self.announce.isChecked()
        said = "only moderators and owners post" if on else "everyone may post"
        self._ask(
            "room.update", {"announce": on}, f"Announcement mode {'on' if on else 'off'}: {said}"
        )

    def _ask_delete(self) -> None:
        confirm(
            self,
            "Delete room",
            f"Delete {self.label} for everyone? Its messages can no longer be read and"
            " its name cannot be used again.",
            "Delete room",
            lambda: self._ask("room.delete", {}, f"{self.label} was deleted"),
            "confirm_delete_room",
        )
