"""The main window: rooms and friends on the left, the conversation on the right."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from .avatars import AvatarCache
from .net import CONNECTING, ONLINE, RECONNECTING, ChatClient
from .profile_dialog import ProfileDialog
from .state import ChatState, dm_key, room_key
from .widgets import CONTACT_ROLE, ComposeBox, ContactDelegate, MessageDelegate, MessageModel

STATE_LOOK = {
    ONLINE: ("Online", "#22a559"),
    RECONNECTING: ("Reconnecting…", "#e67e22"),
    CONNECTING: ("Connecting…", "#e67e22"),
}


class RequestRow(QFrame):
    """An incoming friend request with Accept / Reject."""

    def __init__(self, username: str, window: MainWindow) -> None:
        super().__init__()
        self.setObjectName("requestRow")
        self.setStyleSheet(
            "#requestRow { background: #fff7e6; border: 1px solid #f5d28a; border-radius: 8px; }"
        )
        label = QLabel(f"<b>{_escape(username)}</b> wants to be your friend")
        label.setWordWrap(True)
        accept = QPushButton("Accept")
        accept.setObjectName(f"accept:{username}")
        reject = QPushButton("Reject")
        reject.setObjectName(f"reject:{username}")
        accept.clicked.connect(lambda: window.answer_request(username, True))
        reject.clicked.connect(lambda: window.answer_request(username, False))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(label, 1)
        layout.addWidget(accept)
        layout.addWidget(reject)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class MainWindow(QMainWindow):
    def __init__(self, client: ChatClient, state: ChatState, avatars: AvatarCache) -> None:
        super().__init__()
        self.client = client
        self.state = state
        self.avatars = avatars
        self.setWindowTitle("ChatRoom")
        self.resize(980, 660)

        # -- top bar
        self.me_avatar = QPushButton()
        self.me_avatar.setFlat(True)
        self.me_avatar.setToolTip("Change your picture and status")
        self.me_avatar.clicked.connect(self.edit_profile)
        self.me_name = QLabel()
        self.me_name.setStyleSheet("font-weight: 600;")
        self.me_status = QLabel()
        self.me_status.setStyleSheet("color: #6b7280;")
        self.connection = QLabel()
        self.connection.setObjectName("connection")
        add_friend = QPushButton("Add friend")
        add_friend.clicked.connect(self.add_friend)
        top = QHBoxLayout()
        top.addWidget(self.me_avatar)
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(self.me_name)
        names.addWidget(self.me_status)
        top.addLayout(names)
        top.addStretch(1)
        top.addWidget(self.connection)
        top.addWidget(add_friend)

        # -- left: rooms, requests, friends
        self.rooms = QListWidget()
        self.friends = QListWidget()
        for listing in (self.rooms, self.friends):
            listing.setItemDelegate(ContactDelegate(avatars, listing))
            listing.setMouseTracking(True)
            listing.currentItemChanged.connect(self._picked)
        join_room = QPushButton("+")
        join_room.setToolTip("Join or create a room")
        join_room.setFixedWidth(28)
        join_room.clicked.connect(self.join_room)
        rooms_header = QHBoxLayout()
        rooms_header.addWidget(_section("Rooms"))
        rooms_header.addStretch(1)
        rooms_header.addWidget(join_room)
        self.requests_box = QVBoxLayout()
        self._requests_title = _section("Friend requests")
        self._requests_title.hide()
        self.requests_box.addWidget(self._requests_title)
        self._request_rows: dict[str, RequestRow] = {}
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(rooms_header)
        left_layout.addWidget(self.rooms, 2)
        left_layout.addLayout(self.requests_box)
        left_layout.addWidget(_section("Friends"))
        left_layout.addWidget(self.friends, 3)

        # -- right: notice, title, messages, compose
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setStyleSheet(
            "background: #eef4ff; border: 1px solid #c9dafc; border-radius: 8px; padding: 8px;"
        )
        self.notice.hide()
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.timeout.connect(self.notice.hide)
        self.title = QLabel()
        self.title.setStyleSheet("font-size: 16px; font-weight: 600; padding: 4px 0;")
        self.model = MessageModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(MessageDelegate(avatars, self._avatar_of, self.view))
        self.view.setVerticalScrollMode(QListView.ScrollPerPixel)
        self.view.setSelectionMode(QListView.NoSelection)
        self.view.setWordWrap(True)
        self.view.setUniformItemSizes(False)
        self.view.setStyleSheet("QListView { border: none; background: white; }")
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.compose = ComposeBox()
        self.compose.setPlaceholderText("Write a message — Enter sends, Shift+Enter for a new line")
        self.compose.setFixedHeight(70)
        self.compose.sendRequested.connect(self.send)
        self.compose.textChanged.connect(self._count)
        self.counter = QLabel()
        self._count()
        send = QPushButton("Send")
        send.clicked.connect(lambda: self.send(self.compose.toPlainText()))
        bottom = QHBoxLayout()
        bottom.addWidget(self.counter)
        bottom.addStretch(1)
        bottom.addWidget(send)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 0, 0, 0)
        right_layout.addWidget(self.notice)
        right_layout.addWidget(self.title)
        right_layout.addWidget(self.view, 1)
        right_layout.addWidget(self.compose)
        right_layout.addLayout(bottom)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([290, 690])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        state.conversationChanged.connect(self._conversation_changed)
        state.conversationsChanged.connect(self._refresh_rooms)
        state.conversationsChanged.connect(self._refresh_friends)
        state.friendsChanged.connect(self._refresh_friends)
        state.requestsChanged.connect(self._refresh_requests)
        state.profileChanged.connect(self._refresh_profile)
        state.notice.connect(self.show_notice)
        state.avatarChanged.connect(lambda *_: self._repaint())
        avatars.loaded.connect(lambda _h: self._repaint())
        client.stateChanged.connect(self._connection_changed)
        self._loading_older = False

    # ------------------------------------------------------------------ startup

    def start(self) -> None:
        self._refresh_profile()
        self._refresh_rooms()
        self._refresh_friends()
        self._refresh_requests()
        self._connection_changed(self.client.state)
        self.open(room_key("lobby"))

    # ------------------------------------------------------------------ refresh

    def _avatar_of(self, username: str) -> str | None:
        if username == self.state.me.get("username"):
            return self.state.my_avatar
        return self.state.friends.get(username, {}).get("avatar")

    def _refresh_profile(self) -> None:
        me = self.state.me.get("username", "")
        self.me_name.setText(me)
        self.me_status.setText(self.state.my_status or "Set a status…")
        pixmap = self.avatars.pixmap(self.state.my_avatar, me, 40)
        self.me_avatar.setIcon(pixmap)
        self.me_avatar.setIconSize(pixmap.size())

    def _fill(self, listing: QListWidget, rows: list[tuple[tuple[str, str], dict]]) -> None:
        current = listing.currentItem()
        current_key = current.data(Qt.UserRole) if current else None
        listing.blockSignals(True)
        listing.clear()
        for key, contact in rows:
            item = QListWidgetItem(contact["name"])
            item.setData(Qt.UserRole, key)
            item.setData(CONTACT_ROLE, contact)
            listing.addItem(item)
            if key == current_key:
                listing.setCurrentItem(item)
        listing.blockSignals(False)

    def _refresh_rooms(self) -> None:
        rows = []
        convs = [c for c in self.state.conversations.values() if c.key[0] == "room"]
        convs.sort(key=lambda c: (c.key[1] != "lobby", c.key[1].casefold()))
        for conv in convs:
            last = conv.messages[-1] if conv.messages else None
            subtitle = f"{last['from']['username']}: {last['text']}" if last else ""
            rows.append(
                (
                    conv.key,
                    {
                        "kind": "room",
                        "name": conv.title,
                        "unread": conv.unread,
                        "subtitle": subtitle.replace("\n", " "),
                    },
                )
            )
        self._fill(self.rooms, rows)

    def _refresh_friends(self) -> None:
        rows = []
        friends = sorted(
            self.state.friends.values(), key=lambda f: (not f["online"], f["username"].casefold())
        )
        for friend in friends:
            conv = self.state.conversation(dm_key(friend["username"]))
            subtitle = friend.get("status") or ("online" if friend["online"] else "offline")
            rows.append(
                (
                    conv.key,
                    {
                        "kind": "friend",
                        "name": friend["username"],
                        "unread": conv.unread,
                        "online": friend["online"],
                        "avatar": friend.get("avatar"),
                        "subtitle": subtitle,
                    },
                )
            )
        self._fill(self.friends, rows)

    def _refresh_requests(self) -> None:
        """Add rows for new requests and drop answered ones; unchanged rows stay (a
        button must not vanish under the user's pointer)."""
        wanted = [r["user"]["username"] for r in self.state.incoming]
        for username in list(self._request_rows):
            if username not in wanted:
                self._request_rows.pop(username).deleteLater()
        for username in wanted:
            if username not in self._request_rows:
                row = RequestRow(username, self)
                self._request_rows[username] = row
                self.requests_box.addWidget(row)
        self._requests_title.setVisible(bool(wanted))

    def _repaint(self) -> None:
        self.view.viewport().update()
        self.friends.viewport().update()
        self._refresh_profile()
        self._refresh_friends()

    def _connection_changed(self, status: str) -> None:
        text, color = STATE_LOOK.get(status, ("Offline", "#c0392b"))
        self.connection.setText(f"● {text}")
        self.connection.setStyleSheet(f"color: {color}; font-weight: 600; padding: 0 10px;")

    # ------------------------------------------------------------------ conversation

    def _picked(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is None:
            return
        other = self.friends if item.listWidget() is self.rooms else self.rooms
        other.blockSignals(True)
        other.clearSelection()
        other.setCurrentItem(None)
        other.blockSignals(False)
        self.open(item.data(Qt.UserRole))

    def open(self, key: tuple[str, str]) -> None:
        self.state.open_conversation(key)
        prefix = "#" if key[0] == "room" else "@"
        self.title.setText(f"{prefix} {key[1]}")
        self._show(key, scroll_to_end=True)
        self._refresh_rooms()
        self._refresh_friends()
        self.compose.setFocus()

    def _conversation_changed(self, key: tuple[str, str]) -> None:
        if key == self.state.active:
            self._show(key)
        self._refresh_rooms()
        self._refresh_friends()

    def _show(self, key: tuple[str, str], scroll_to_end: bool = False) -> None:
        bar = self.view.verticalScrollBar()
        at_end = scroll_to_end or bar.value() >= bar.maximum() - 4
        first_id = self.model.messages[0].get("id") if self.model.messages else None
        self.model.set_messages(
            self.state.conversation(key).messages, self.state.me.get("username", "")
        )
        if at_end:
            self.view.scrollToBottom()
            QTimer.singleShot(0, self.view.scrollToBottom)
        elif self._loading_older and first_id is not None:
            # Older messages came in above: keep the one we were looking at in place.
            for row, message in enumerate(self.model.messages):
                if message.get("id") == first_id:
                    self.view.scrollTo(self.model.index(row), QListView.PositionAtTop)
                    break
        self._loading_older = False

    def _scrolled(self, value: int) -> None:
        if value == 0 and self.state.active and self.model.messages:
            self._loading_older = True
            self.state.load_older(self.state.active)

    def _count(self) -> None:
        limit = self.client.limits.get("max_text_chars", 4000)
        used = len(self.compose.toPlainText())
        self.counter.setText(f"{used} / {limit}")
        self.counter.setStyleSheet(f"color: {'#c0392b' if used > limit else '#6b7280'};")

    def send(self, text: str) -> None:
        limit = self.client.limits.get("max_text_chars", 4000)
        if not text.strip() or self.state.active is None:
            return
        if len(text) > limit:
            self.show_notice(f"A message is at most {limit} characters; shorten it.")
            return
        self.state.send(self.state.active, text)
        self.compose.clear()
        self.view.scrollToBottom()

    # ------------------------------------------------------------------ actions

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()
        self._notice_timer.start(8000)

    def _report(self, success: str) -> Any:
        def done(reply: dict) -> None:
            self.show_notice(success if reply.get("ok") else reply["error"]["message"])

        return done

    def add_friend(self, username: str | None = None) -> None:
        if username is None:
            username, ok = QInputDialog.getText(self, "Add friend", "Username:")
            if not ok or not username.strip():
                return
        self.client.request(
            "friend.request",
            {"username": username.strip()},
            self._report(f"Friend request sent to {username.strip()}"),
        )

    def answer_request(self, username: str, accept: bool) -> None:
        op = "friend.accept" if accept else "friend.reject"
        verb = "accepted" if accept else "rejected"

        def done(reply: dict) -> None:
            if reply.get("ok"):
                self.state.incoming = [
                    r for r in self.state.incoming if r["user"]["username"] != username
                ]
                self._refresh_requests()
                self.show_notice(f"You {verb} {username}'s request")
            else:
                self.show_notice(reply["error"]["message"])

        self.client.request(op, {"username": username}, done)

    def join_room(self, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self, "Join or create a room", "Room name:")
            if not ok or not name.strip():
                return
        name = name.strip()

        def joined(reply: dict) -> None:
            if reply.get("ok"):
                self.open(room_key(reply["room"]["name"]))
            elif reply["error"]["code"] == "not_found":
                self.client.request("room.create", {"room": name}, joined)
            else:
                self.show_notice(reply["error"]["message"])

        self.client.request("room.join", {"room": name}, joined)

    def edit_profile(self) -> None:
        ProfileDialog(self.client, self.state, self.avatars, self).exec()


def _section(text: str) -> QLabel:
    label = QLabel(text.upper())
    label.setStyleSheet("color: #6b7280; font-size: 11px; font-weight: 600; padding: 6px 2px 2px;")
    return label
