"""The main window's left side: rooms (with + to join or create one), incoming friend
requests as cards with Accept / Reject, and friends with their presence and the last
message; a click on a row opens that conversation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .avatars import AvatarCache
from .blocking import add_user_menu
from .conversations import dm_key, room_label, with_deleted_account
from .net import ONLINE, ChatClient
from .state import ChatState
from .ui import ElidedLabel, HintListWidget, button
from .widgets import CONTACT_ROLE, ContactDelegate, format_last_seen

Key = tuple[str, str]
NOTIFY_TIPS = {"mentions": "\nNotifications: mentions only", "none": "\nNotifications: none"}


def presence_text(friend: dict[str, Any], we_are_online: bool) -> str:
    """ "online · status", or when they were last seen."""
    if not we_are_online:
        return "not known while you are offline"
    if friend.get("online"):
        return " · ".join(p for p in ("online", friend.get("status")) if p)
    seen = format_last_seen(friend.get("last_seen"))
    return " · ".join(p for p in (seen, friend.get("status")) if p)


def section(text: str) -> QLabel:
    return QLabel(text.upper())


NAME_MAX_PX = 110  # of a friend request card's name; a longer one elides


class RequestRow(QFrame):
    """An incoming friend request: who wants to be your friend (elided, the whole
    sentence in the tooltip), then Accept and Reject. Two short lines, whatever the
    width."""

    def __init__(self, username: str, answer: Callable[[str, bool], None]) -> None:
        super().__init__()
        self.setObjectName("requestRow")
        # Never squeezed: in a short window the lists around it give up the room.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setToolTip(f"{username} wants to be your friend")
        c = theme.colors()
        self.setStyleSheet(
            f"#requestRow {{ background: {c.card}; border: 1px solid {c.card_border};"
            " border-radius: 8px; } #requestRow QPushButton { padding: 2px 8px; }"
        )
        name = ElidedLabel(username)
        name.setObjectName(f"request:{username}")
        name.setStyleSheet("font-weight: 600;")
        # The name keeps its width (up to NAME_MAX_PX); the sentence after it elides.
        bold = QFont(name.font())
        bold.setWeight(QFont.Weight.DemiBold)
        name.setFixedWidth(min(QFontMetrics(bold).horizontalAdvance(username) + 2, NAME_MAX_PX))
        name.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        what = ElidedLabel("wants to be your friend")
        what.setObjectName(f"request_text:{username}")
        what.setStyleSheet(f"color: {c.muted};")
        accept = button("Accept", lambda: answer(username, True), f"accept:{username}")
        reject = button("Reject", lambda: answer(username, False), f"reject:{username}")
        # Who and what on the first line, the answers on the second: in a narrow
        # window the buttons took the second line's width and left "w…" of the text
        # (seen at 420×360); now only the sentence's end gives way, after the name.
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 6, 4)
        layout.setSpacing(2)
        who = QHBoxLayout()
        who.setSpacing(4)
        who.addWidget(name)
        who.addWidget(what, 1)
        layout.addLayout(who)
        answers = QHBoxLayout()
        answers.addStretch(1)
        answers.addWidget(accept)
        answers.addWidget(reject)
        layout.addLayout(answers)


class SidePanel(QWidget):
    def __init__(
        self,
        client: ChatClient,
        state: ChatState,
        avatars: AvatarCache,
        open_conversation: Callable[[Key], None],
        join_room: Callable[[], None],
        answer_request: Callable[[str, bool], None],
    ) -> None:
        super().__init__()
        self.client = client
        self.state = state
        self.open_conversation = open_conversation
        self.answer_request = answer_request
        self.setMinimumWidth(150)
        self.rooms = HintListWidget()
        self.rooms.hint = "Click + to join or create a room."
        self.friends = HintListWidget()
        self.friends.hint = "No friends yet. Click “Add friend” and type a username."
        for listing in (self.rooms, self.friends):
            listing.setMinimumHeight(56)
            listing.setItemDelegate(ContactDelegate(avatars, listing))
            listing.setMouseTracking(True)
            listing.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            listing.currentItemChanged.connect(self._picked)
        # Right-click a friend: Block… (blocking ends the friendship).
        add_user_menu(
            self.friends,
            state.blocks,
            lambda item: item.data(Qt.ItemDataRole.UserRole)[1],
            state.notice.emit,
            lambda: state.me.get("username"),
        )
        self.join_room_button = button("+", join_room, "join_room", "Join or create a room")
        self.join_room_button.setFixedWidth(28)
        rooms_header = QHBoxLayout()
        self._sections = [section("Rooms"), section("Friend requests"), section("Friends")]
        rooms_header.addWidget(self._sections[0])
        rooms_header.addStretch(1)
        rooms_header.addWidget(self.join_room_button)
        self._requests_title = self._sections[1]
        self._requests_title.hide()
        # The cards scroll in a strip of at most about two cards, so a short window
        # or many requests never squeeze the cards or push the friend list away.
        cards = QWidget()
        self.requests_box = QVBoxLayout(cards)
        self.requests_box.setContentsMargins(0, 0, 0, 0)
        self.requests_box.setSpacing(4)
        self.requests_area = QScrollArea()
        self.requests_area.setWidget(cards)
        self.requests_area.setWidgetResizable(True)
        self.requests_area.setFrameShape(QFrame.Shape.NoFrame)
        self.requests_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.requests_area.hide()
        self._request_rows: dict[str, RequestRow] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(rooms_header)
        layout.addWidget(self.rooms, 1)
        layout.addWidget(self._requests_title)
        layout.addWidget(self.requests_area)
        layout.addWidget(self._sections[2])
        layout.addWidget(self.friends, 1)

    def restyle(self) -> None:
        c = theme.colors()
        for label in self._sections:
            label.setStyleSheet(
                f"color: {c.muted}; font-size: 11px; font-weight: 600; padding: 6px 2px 2px;"
            )

    def _picked(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is not None:
            self.open_conversation(item.data(Qt.ItemDataRole.UserRole))

    def _fill(self, listing: QListWidget, rows: list[tuple[Key, dict]]) -> None:
        """Rows anew; the open conversation's row is the selected one (and no other, so
        a click on any row, even the previously selected one, opens it)."""
        current_key = self.state.active
        listing.blockSignals(True)
        listing.clear()
        for key, contact in rows:
            item = QListWidgetItem(contact["name"])
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setData(CONTACT_ROLE, contact)
            item.setToolTip(contact.get("tooltip", contact["name"]))
            if contact.get("pending"):
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)  # nothing to open until they answer
            listing.addItem(item)
            if key == current_key:
                listing.setCurrentItem(item)
        listing.blockSignals(False)

    def _preview(self, key: Key) -> str:
        shown = self.state.shown(key)
        last = shown[-1] if shown else None
        if last is None:
            return ""
        sender = last["from"]["username"]
        who = "You" if sender == self.state.me.get("username") else sender
        text = "(message deleted)" if last.get("deleted") else last["text"]
        if (key[0] == "dm" and who != "You") or last.get("kind") == "event":
            return text
        return f"{who}: {text}"

    def refresh_rooms(self) -> None:
        rows = []
        convs = [c for c in self.state.conversations.values() if c.key[0] == "room"]
        convs.sort(key=lambda c: (c.key[1] != "lobby", c.key[1].casefold()))
        for conv in convs:
            contact = {
                "kind": "room",
                "private": conv.visibility == "private",
                "name": conv.title,
                "unread": conv.unread,
                "mentions": conv.mentions,
                "notify": conv.notify,
                "subtitle": self._preview(conv.key),
                "tooltip": room_label(conv)
                + (" (private: only its members see it)" if conv.visibility == "private" else "")
                + NOTIFY_TIPS.get(conv.notify, ""),
            }
            rows.append((conv.key, contact))
        self._fill(self.rooms, rows)

    def refresh_friends(self) -> None:
        rows = []
        friends = sorted(
            self.state.friends.values(), key=lambda f: (not f["online"], f["username"].casefold())
        )
        we_are_online = self.client.state == ONLINE
        for friend in friends:
            conv = self.state.conversation(dm_key(friend["username"]))
            presence = presence_text(friend, we_are_online)
            contact = {
                "kind": "friend",
                "name": friend["username"],
                "unread": conv.unread,
                # Shown online only while we are: offline, we do not know.
                "online": bool(friend.get("online")) and we_are_online,
                "avatar": friend.get("avatar"),
                # The last message, as chat lists show; presence in the tooltip and in
                # the conversation's header.
                "subtitle": self._preview(conv.key) or presence,
                "tooltip": f"{friend['username']}\n{presence}",
            }
            rows.append((conv.key, contact))
        # Conversations with people who are no longer friends, to read (not write).
        for conv in self.state.conversations.values():
            who = conv.key[1]
            asked = any(r["user"]["username"] == who for r in self.state.outgoing)
            if conv.key[0] != "dm" or who in self.state.friends or asked or not conv.messages:
                continue  # (with a request sent, its row stands for them)
            gone = with_deleted_account(conv.key)
            contact = {
                "kind": "friend",
                "name": conv.title,
                "unread": conv.unread,
                "online": False,
                "subtitle": self._preview(conv.key) or "not a friend",
                "tooltip": "This account was deleted: you can read your conversation"
                if gone
                else f"{who} is not your friend: you can read your conversation",
            }
            rows.append((conv.key, contact))
        for request in self.state.outgoing:
            who = request["user"]["username"]
            contact = {
                "kind": "friend",
                "name": who,
                "online": False,
                "subtitle": "friend request sent",
                "tooltip": f"You asked {who} to be your friend; waiting for an answer",
                "pending": True,
            }
            rows.append((("pending", who), contact))
        self._fill(self.friends, rows)

    def refresh_requests(self) -> None:
        """Add rows for new requests and drop answered ones; unchanged rows stay (a
        button must not vanish under the user's pointer)."""
        wanted = [r["user"]["username"] for r in self.state.incoming]
        for username in list(self._request_rows):
            if username not in wanted:
                self._request_rows.pop(username).deleteLater()
        for username in wanted:
            if username not in self._request_rows:
                row = RequestRow(username, self.answer_request)
                self._request_rows[username] = row
                self.requests_box.addWidget(row)
        self._requests_title.setVisible(bool(wanted))
        self.requests_area.setVisible(bool(wanted))
        if wanted:
            card = next(iter(self._request_rows.values())).sizeHint().height() + 4
            self.requests_area.setMinimumHeight(min(len(wanted), 1) * card)
            self.requests_area.setMaximumHeight(min(len(wanted), 2) * card + card // 3)
