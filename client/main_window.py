"""The main window: rooms and friends on the left, the conversation on the right.

Every button goes through `ui.on_click` (see ui.py for why). Dialogs open without
blocking, so messages keep arriving while one is open and tests answer them as a
person does.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .avatars import AvatarCache
from .dialogs import ActivityDialog, RoomDialog, SwitcherDialog
from .net import CONNECTING, ONLINE, RECONNECTING, ChatClient
from .notify import Notifier
from .profile_dialog import ProfileDialog
from .state import ChatState, dm_key, room_key
from .ui import ElidedLabel, HintListView, HintListWidget, ask_text, button, confirm
from .widgets import (
    CONTACT_ROLE,
    ComposeBox,
    ContactDelegate,
    MessageDelegate,
    MessageModel,
    format_last_seen,
)

STATE_LOOK = {
    ONLINE: ("Online", "online"),
    RECONNECTING: ("Reconnecting…", "warning"),
    CONNECTING: ("Connecting…", "warning"),
}
NOTICE_MS = 8000
REFRESH_MS = 50
NARROW_FOR_MEMBERS = 760  # px of window below which the member list replaces the messages


class RequestRow(QFrame):
    """An incoming friend request: who (elided, full name in the tooltip), then Accept
    and Reject. Two short lines at most, whatever the width."""

    def __init__(self, username: str, window: MainWindow) -> None:
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
        what = ElidedLabel("wants to be your friend")
        what.setStyleSheet(f"color: {c.muted};")
        accept = button(
            "Accept", lambda: window.answer_request(username, True), f"accept:{username}"
        )
        reject = button(
            "Reject", lambda: window.answer_request(username, False), f"reject:{username}"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 6, 4)
        layout.setSpacing(2)
        layout.addWidget(name)
        answers = QHBoxLayout()
        answers.addWidget(what, 1)
        answers.addWidget(accept)
        answers.addWidget(reject)
        layout.addLayout(answers)


class MainWindow(QMainWindow):
    signOutRequested = Signal()
    closed = Signal()  # the user closed the window: the app is quitting

    def __init__(self, client: ChatClient, state: ChatState, avatars: AvatarCache) -> None:
        super().__init__()
        self.client = client
        self.state = state
        self.avatars = avatars
        self.setWindowTitle("ChatRoom")
        self.setWindowIcon(theme.app_icon())
        self.setMinimumSize(400, 340)
        self.resize(980, 660)
        self.notifier = Notifier(self)
        self.activity_dialog: ActivityDialog | None = None

        # -- top bar
        self.me_avatar = button("", self.edit_profile, "me_avatar", "Your picture and status")
        self.me_avatar.setFlat(True)
        self.me_name = ElidedLabel()
        self.me_name.setObjectName("me_name")
        self.me_status = ElidedLabel()
        self.me_status.setObjectName("me_status")
        self.connection = QLabel()
        self.connection.setObjectName("connection")
        self.activity_button = button("Activity", self.show_activity, "activity_button")
        self.activity_button.setToolTip("Friend requests and answers")
        self.add_friend_button = button("Add friend", self.add_friend, "add_friend")
        top = QHBoxLayout()
        top.addWidget(self.me_avatar)
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(self.me_name)
        names.addWidget(self.me_status)
        top.addLayout(names, 1)
        top.addWidget(self.connection)
        top.addWidget(self.activity_button)
        top.addWidget(self.add_friend_button)

        # -- left: rooms, requests, friends
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
        self.join_room_button = button("+", self.join_room, "join_room", "Join or create a room")
        self.join_room_button.setFixedWidth(28)
        rooms_header = QHBoxLayout()
        self._sections = [_section("Rooms"), _section("Friend requests"), _section("Friends")]
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
        left = QWidget()
        left.setMinimumWidth(150)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(rooms_header)
        left_layout.addWidget(self.rooms, 1)
        left_layout.addWidget(self._requests_title)
        left_layout.addWidget(self.requests_area)
        left_layout.addWidget(self._sections[2])
        left_layout.addWidget(self.friends, 1)

        # -- right: notice, conversation header, find bar, messages (+ members), compose
        self.notice = ElidedLabel()
        self.notice.setObjectName("notice")
        self.notice_close = button("×", self.hide_notice, "notice_close", "Dismiss")
        self.notice_close.setFlat(True)
        self.notice_close.setFixedWidth(24)
        self.notice_bar = QFrame()
        self.notice_bar.setObjectName("noticeBar")
        notice_layout = QHBoxLayout(self.notice_bar)
        notice_layout.setContentsMargins(8, 2, 2, 2)
        notice_layout.addWidget(self.notice, 1)
        notice_layout.addWidget(self.notice_close)
        self.notice_bar.hide()
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.timeout.connect(self.hide_notice)

        self.title = ElidedLabel()
        self.title.setObjectName("title")
        self.members_button = button("Members", self.toggle_members, "members")
        self.members_button.setCheckable(True)
        self.leave_button = button("Leave", self.leave_room, "leave_room", "Leave this room")
        self.remove_friend_button = button(
            "Remove friend", self.remove_friend, "remove_friend", "Remove from your friends"
        )
        self.presence_line = ElidedLabel()
        self.presence_line.setObjectName("presence_line")
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(self.title)
        titles.addWidget(self.presence_line)
        header = QHBoxLayout()
        header.addLayout(titles, 1)
        header.addWidget(self.members_button)
        header.addWidget(self.leave_button)
        header.addWidget(self.remove_friend_button)

        self.find_edit = QLineEdit()
        self.find_edit.setObjectName("find")
        self.find_edit.setPlaceholderText("Find in this conversation (Enter: older match)")
        self.find_edit.textChanged.connect(lambda _text: self.find_next(restart=True))
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_count = QLabel()
        self.find_close = button("×", self.hide_find, "find_close", "Close (Esc)")
        self.find_close.setFlat(True)
        self.find_close.setFixedWidth(24)
        self.find_bar = QWidget()
        find_layout = QHBoxLayout(self.find_bar)
        find_layout.setContentsMargins(0, 0, 0, 0)
        find_layout.addWidget(self.find_edit, 1)
        find_layout.addWidget(self.find_count)
        find_layout.addWidget(self.find_close)
        self.find_bar.hide()
        self._matches: list[int] = []
        self._match = -1

        self.model = MessageModel()
        self.view = HintListView()
        self.view.hint = "No messages yet. Say hello!"
        self.view.setModel(self.model)
        self.view.setItemDelegate(
            MessageDelegate(
                avatars, self._avatar_of, lambda: state.me.get("username", ""), self.view
            )
        )
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.view.setWordWrap(True)
        self.view.setUniformItemSizes(False)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.members = QListWidget()
        self.members.setObjectName("member_list")
        self.members.setItemDelegate(ContactDelegate(avatars, self.members))
        self.members.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.members.setMinimumWidth(120)
        self.members.hide()
        middle = QSplitter()
        middle.setChildrenCollapsible(False)
        middle.addWidget(self.view)
        middle.addWidget(self.members)
        middle.setStretchFactor(0, 1)

        self.compose = ComposeBox()
        self.compose.setObjectName("compose")
        self.compose.setPlaceholderText("Write a message…")
        self.compose.setToolTip("Enter sends, Shift+Enter starts a new line")
        self.compose.setFixedHeight(70)
        self.compose.sendRequested.connect(self.send)
        self.compose.textChanged.connect(self._count)
        self.counter = QLabel()
        self.send_button = button("Send", lambda: self.send(self.compose.toPlainText()), "send")
        bottom = QHBoxLayout()
        bottom.addWidget(self.counter)
        bottom.addStretch(1)
        bottom.addWidget(self.send_button)
        right = QWidget()
        right.setMinimumWidth(220)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 0, 0, 0)
        right_layout.addWidget(self.notice_bar)
        right_layout.addLayout(header)
        right_layout.addWidget(self.find_bar)
        right_layout.addWidget(middle, 1)
        right_layout.addWidget(self.compose)
        right_layout.addLayout(bottom)

        self.splitter = QSplitter()
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([290, 690])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        # -- keyboard
        for keys, action in (
            ("Ctrl+K", self.show_switcher),
            ("Ctrl+F", self.show_find),
            ("Esc", self.escape),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(action)

        state.conversationChanged.connect(self._conversation_changed)
        state.conversationsChanged.connect(self._refresh_lists)
        state.friendsChanged.connect(self._refresh_friends)
        state.requestsChanged.connect(self._refresh_requests)
        state.profileChanged.connect(self._refresh_profile)
        state.notice.connect(self.show_notice)
        state.activityChanged.connect(self._refresh_activity)
        state.membersChanged.connect(self._refresh_members)
        state.unreadChanged.connect(self._refresh_title)
        state.alert.connect(self._alert)
        state.avatarChanged.connect(lambda *_: self._repaint())
        avatars.loaded.connect(lambda _h: self._repaint())
        client.stateChanged.connect(self._connection_changed)
        self._loading_older = False
        self._changed: set[tuple[str, str]] = set()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._catch_up)
        self.restyle()
        self._count()

    # ------------------------------------------------------------------ startup

    def start(self) -> None:
        self._refresh_profile()
        self._refresh_lists()
        self._refresh_requests()
        self._refresh_activity()
        self._refresh_title()
        self._connection_changed(self.client.state)
        self.open(room_key("lobby"))

    def restyle(self) -> None:
        c = theme.colors()
        self.me_name.setStyleSheet("font-weight: 600;")
        self.me_status.setStyleSheet(f"color: {c.muted};")
        self.notice_bar.setStyleSheet(
            f"#noticeBar {{ background: {c.card}; border: 1px solid {c.card_border};"
            " border-radius: 8px; }"
        )
        self.title.setStyleSheet("font-size: 16px; font-weight: 600; padding: 4px 0;")
        self.presence_line.setStyleSheet(f"color: {c.muted};")
        self.view.setStyleSheet(f"QListView {{ border: none; background: {c.base}; }}")
        for label in self._sections:
            label.setStyleSheet(
                f"color: {c.muted}; font-size: 11px; font-weight: 600; padding: 6px 2px 2px;"
            )
        self._connection_changed(self.client.state)
        self._count()
        self._repaint()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        super().closeEvent(event)
        self.notifier.close()
        self.closed.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        # A short window keeps its room for the conversation.
        self.compose.setFixedHeight(70 if self.height() >= 520 else 44)
        self._place_members()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ActivationChange, QEvent.Type.WindowStateChange):
            self.state.set_watching(self.isActiveWindow() and not self.isMinimized())

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

    def _refresh_title(self, *_args: Any) -> None:
        total = self.state.unread_total
        self.setWindowTitle(f"ChatRoom ({total})" if total else "ChatRoom")
        self.notifier.set_unread(total)

    def _fill(self, listing: QListWidget, rows: list[tuple[tuple[str, str], dict]]) -> None:
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

    def _preview(self, key: tuple[str, str]) -> str:
        last = self.state.conversation(key).last_message
        if last is None:
            return ""
        sender = last["from"]["username"]
        who = "You" if sender == self.state.me.get("username") else sender
        if key[0] == "dm" and who != "You":
            return last["text"]
        return f"{who}: {last['text']}"

    def _refresh_lists(self) -> None:
        self._refresh_rooms()
        self._refresh_friends()
        self._refresh_header()

    def _refresh_rooms(self) -> None:
        rows = []
        convs = [c for c in self.state.conversations.values() if c.key[0] == "room"]
        convs.sort(key=lambda c: (c.key[1] != "lobby", c.key[1].casefold()))
        for conv in convs:
            contact = {
                "kind": "room",
                "name": conv.title,
                "unread": conv.unread,
                "mentions": conv.mentions,
                "subtitle": self._preview(conv.key),
                "tooltip": f"#{conv.title}",
            }
            rows.append((conv.key, contact))
        self._fill(self.rooms, rows)

    def _online(self, friend: dict[str, Any]) -> bool:
        """Shown online only while we are: offline, we do not know."""
        return bool(friend.get("online")) and self.client.state == ONLINE

    def _presence(self, friend: dict[str, Any]) -> str:
        """ "online · status", or when they were last seen."""
        if self.client.state != ONLINE:
            return "not known while you are offline"
        if friend.get("online"):
            return " · ".join(p for p in ("online", friend.get("status")) if p)
        seen = format_last_seen(friend.get("last_seen"))
        return " · ".join(p for p in (seen, friend.get("status")) if p)

    def _refresh_friends(self) -> None:
        rows = []
        friends = sorted(
            self.state.friends.values(), key=lambda f: (not f["online"], f["username"].casefold())
        )
        for friend in friends:
            conv = self.state.conversation(dm_key(friend["username"]))
            presence = self._presence(friend)
            contact = {
                "kind": "friend",
                "name": friend["username"],
                "unread": conv.unread,
                "online": self._online(friend),
                "avatar": friend.get("avatar"),
                # The last message, as chat lists show; presence in the tooltip and in
                # the conversation's header.
                "subtitle": self._preview(conv.key) or presence,
                "tooltip": f"{friend['username']}\n{presence}",
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
        self._refresh_presence_line()

    def _refresh_presence_line(self) -> None:
        key = self.state.active
        friend = self.state.friends.get(key[1]) if key and key[0] == "dm" else None
        self.presence_line.setText(self._presence(friend) if friend else "")
        self.presence_line.setVisible(friend is not None)

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
        self.requests_area.setVisible(bool(wanted))
        if wanted:
            card = next(iter(self._request_rows.values())).sizeHint().height() + 4
            self.requests_area.setMinimumHeight(min(len(wanted), 1) * card)
            self.requests_area.setMaximumHeight(min(len(wanted), 2) * card + card // 3)

    def _refresh_activity(self) -> None:
        dialog_open = self.activity_dialog is not None and self.activity_dialog.isVisible()
        if dialog_open and self.state.new_activity:
            self.state.saw_activity()  # comes back here with nothing new
            return
        new = self.state.new_activity
        self.activity_button.setText(f"Activity ({new})" if new > 0 else "Activity")

    def _refresh_header(self) -> None:
        key = self.state.active
        if key is None:
            self.title.setText("")
        else:
            self.title.setText(("# " if key[0] == "room" else "@ ") + key[1])
        is_room = key is not None and key[0] == "room"
        self.members_button.setVisible(is_room)
        self.leave_button.setVisible(key is not None and is_room and key[1] != "lobby")
        self.remove_friend_button.setVisible(
            key is not None and key[0] == "dm" and key[1] in self.state.friends
        )
        if not is_room and self.members.isVisible():
            self.members_button.setChecked(False)
            self._place_members()
        self._refresh_presence_line()

    def _refresh_members(self, key: tuple[str, str]) -> None:
        if key != self.state.active:
            return
        self.members.clear()
        members = self.state.conversation(key).members or []
        for member in sorted(
            members, key=lambda m: (not m.get("online"), m["username"].casefold())
        ):
            item = QListWidgetItem(member["username"])
            item.setData(
                CONTACT_ROLE,
                {
                    "kind": "friend",
                    "name": member["username"],
                    "online": member.get("online"),
                    "avatar": member.get("avatar"),
                    "subtitle": member.get("status") or ("online" if member.get("online") else ""),
                },
            )
            item.setToolTip(member["username"])
            self.members.addItem(item)

    def _repaint(self) -> None:
        self.view.viewport().update()
        self.friends.viewport().update()
        self._refresh_profile()
        self._refresh_friends()

    def _connection_changed(self, status: str) -> None:
        text, role = STATE_LOOK.get(status, ("Offline", "error"))
        color = getattr(theme.colors(), role)
        self.connection.setText(f"● {text}")
        self.connection.setStyleSheet(f"color: {color}; font-weight: 600; padding: 0 6px;")
        self._refresh_friends()  # friends' presence is unknown while we are not online

    # ------------------------------------------------------------------ conversation

    def _picked(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is not None:
            self.open(item.data(Qt.ItemDataRole.UserRole))

    def open(self, key: tuple[str, str]) -> None:
        self.state.open_conversation(key)
        self.hide_find()
        self._show(key, scroll_to_end=True)
        self._refresh_lists()
        if self.members_button.isChecked() and key[0] == "room":
            self.state.load_members(key)
        self.compose.setFocus()

    def _conversation_changed(self, key: tuple[str, str]) -> None:
        # A busy room changes many times a second: the view and the lists catch up
        # once per REFRESH_MS, not once per message.
        self._changed.add(key)
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _catch_up(self) -> None:
        changed, self._changed = self._changed, set()
        if self.state.active in changed:
            self._show(self.state.active)
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
                    self.view.scrollTo(
                        self.model.index(row), QAbstractItemView.ScrollHint.PositionAtTop
                    )
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
        c = theme.colors()
        self.counter.setStyleSheet(f"color: {c.error if used > limit else c.muted};")

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

    # ------------------------------------------------------------------ find (Ctrl+F)

    def show_find(self) -> None:
        self.find_bar.show()
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def hide_find(self) -> None:
        if self.find_bar.isVisible():
            self.find_bar.hide()
            self.compose.setFocus()
        self._matches, self._match = [], -1
        self.model.set_found(-1)
        self.find_count.setText("")

    def find_next(self, restart: bool = False) -> None:
        """Jump to the newest match, then (Enter) to each older one in turn."""
        wanted = self.find_edit.text().casefold()
        if restart or not self._matches:
            self._matches = [
                row
                for row, message in enumerate(self.model.messages)
                if wanted and wanted in message["text"].casefold()
            ]
            self._match = len(self._matches)
        if not self._matches:
            self.model.set_found(-1)
            self.find_count.setText("no match" if wanted else "")
            return
        self._match = (self._match - 1) % len(self._matches)
        row = self._matches[self._match]
        self.model.set_found(row)
        self.view.scrollTo(self.model.index(row), QAbstractItemView.ScrollHint.PositionAtCenter)
        self.find_count.setText(f"{self._match + 1} of {len(self._matches)}")

    # ------------------------------------------------------------------ actions

    def escape(self) -> None:
        if self.find_bar.isVisible():
            self.hide_find()
        elif self.notice_bar.isVisible():
            self.hide_notice()
        elif self.members.isVisible():
            self.members_button.setChecked(False)
            self._place_members()

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice_bar.show()
        self._notice_timer.start(NOTICE_MS)

    def hide_notice(self) -> None:
        self.notice_bar.hide()

    def _report(self, success: str) -> Any:
        def done(reply: dict) -> None:
            self.show_notice(success if reply.get("ok") else reply["error"]["message"])

        return done

    def _alert(self, title: str, body: str, key: Any) -> None:
        if not self.isActiveWindow():
            self.notifier.notify(title, body)

    def show_activity(self) -> None:
        if self.activity_dialog is None:
            self.activity_dialog = ActivityDialog(self.state, self)
        self.activity_dialog.show()
        self.activity_dialog.raise_()
        self.state.saw_activity()

    def show_switcher(self) -> None:
        dialog = SwitcherDialog(self.state, self.open, self)
        dialog.open()
        dialog.query.setFocus()

    def add_friend(self) -> None:
        def ask(username: str) -> None:
            self.state.request_friend(username, self._report(f"Friend request sent to {username}"))

        ask_text(self, "Add friend", "Their username:", ask, "add_friend_dialog")

    def answer_request(self, username: str, accept: bool) -> None:
        verb = "accepted" if accept else "rejected"
        self.state.answer_request(
            username, accept, self._report(f"You {verb} {username}'s request")
        )

    def remove_friend(self) -> None:
        key = self.state.active
        if key is None or key[0] != "dm":
            return
        username = key[1]
        confirm(
            self,
            "Remove friend",
            f"Remove {username} from your friends? You will no longer be able to message "
            "each other until one of you sends a new friend request.",
            "Remove",
            lambda: self.state.remove_friend(username, self._after_removal(username)),
            "confirm_remove_friend",
        )

    def _after_removal(self, username: str) -> Any:
        def done(reply: dict) -> None:
            if reply.get("ok"):
                self.show_notice(f"{username} is no longer your friend")
                self.open(room_key("lobby"))
            else:
                self.show_notice(reply["error"]["message"])

        return done

    def join_room(self) -> None:
        def joined(reply: dict) -> None:
            self.open(room_key(reply["room"]["name"]))

        dialog = RoomDialog(self.state, joined, self)
        dialog.open()
        dialog.query.setFocus()

    def leave_room(self) -> None:
        key = self.state.active
        if key is None or key[0] != "room" or key[1] == "lobby":
            return
        name = key[1]

        def left(reply: dict) -> None:
            if reply.get("ok"):
                self.show_notice(f"You left #{name}")
                self.open(room_key("lobby"))
            else:
                self.show_notice(reply["error"]["message"])

        confirm(
            self,
            "Leave room",
            f"Leave #{name}? You can join it again later.",
            "Leave",
            lambda: self.state.leave_room(name, left),
            "confirm_leave_room",
        )

    def toggle_members(self) -> None:
        key = self.state.active
        self._place_members()
        if key is not None and self.members.isVisible():
            self._refresh_members(key)
            self.state.load_members(key)

    def _place_members(self) -> None:
        """Beside the conversation when there is room; in a narrow window instead of it
        (the conversation squeezed to a sliver is unreadable)."""
        key = self.state.active
        show = self.members_button.isChecked() and key is not None and key[0] == "room"
        narrow = self.width() < NARROW_FOR_MEMBERS
        self.members.setVisible(show)
        self.view.setVisible(not (show and narrow))

    def edit_profile(self) -> None:
        dialog = ProfileDialog(self.client, self.state, self.avatars, self)
        dialog.signOutRequested.connect(self.signOutRequested)
        dialog.open()


def _section(text: str) -> QLabel:
    return QLabel(text.upper())
