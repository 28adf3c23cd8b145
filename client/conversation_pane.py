"""The main window's right side: the notice banner, the open conversation's header
(title, presence or a room's topic, Settings / Members / Leave / Remove friend), the
find bar (Ctrl+F), the messages (older history loads when scrolled to the top) beside
the member list, and the compose box with its length counter (disabled, saying why, in
an announcement room where we may not post)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .actions import ChatActions
from .avatars import AvatarCache
from .blocking import add_user_menu
from .conversations import may_post, receipt_ticks, title_of, with_deleted_account
from .message_menu import MessageMenu
from .net import ONLINE, ChatClient
from .notify_menu import NotifyButton
from .room_settings import RoomSettingsDialog
from .side_panel import presence_text
from .state import ChatState
from .typing_hints import typing_text
from .ui import ElidedLabel, HintListView, button, on_click
from .widgets import CONTACT_ROLE, ComposeBox, ContactDelegate, MessageDelegate, MessageModel

NOTICE_MS = 8000
NARROW_FOR_MEMBERS = 760  # px of window below which the member list replaces the messages
FOLLOW_SLACK = 4  # px above the bottom that still count as "at the bottom"
COMPOSE_MAX_H = 110  # px: a disabled compose box grows to show why, up to this

Key = tuple[str, str]


class ConversationPane(QWidget):
    def __init__(
        self,
        client: ChatClient,
        state: ChatState,
        actions: ChatActions,
        avatars: AvatarCache,
        leave_room: Callable[[], None],
        remove_friend: Callable[[], None],
    ) -> None:
        super().__init__()
        self.client = client
        self.state = state
        self.chat_actions = actions
        self.setMinimumWidth(220)

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
        self.settings_button = button(
            "Settings", self.open_settings, "room_settings", "Topic, members, roles, moderation"
        )
        self.members_button = button("Members", self.toggle_members, "members")
        self.members_button.setCheckable(True)
        self.leave_button = button("Leave", leave_room, "leave_room", "Leave this room")
        self.notify = NotifyButton(actions, self.show_notice)
        self.remove_friend_button = button(
            "Remove friend", remove_friend, "remove_friend", "Remove from your friends"
        )
        # When the buttons do not fit beside the name (a small window), these go into
        # the "⋯" menu and the name gets a line of its own.
        self.more_button = button(
            "⋯", self.open_more_menu, "header_more", "More: settings, members, leave…"
        )
        self.more_button.setFixedWidth(40)  # one glyph: a text button's width is not needed
        self._actions: list[QPushButton] = [
            self.settings_button,
            self.members_button,
            self.leave_button,
            self.remove_friend_button,
        ]
        self._wanted: dict[str, bool] = {}  # objectName -> shown for this conversation
        self.presence_line = ElidedLabel()
        self.presence_line.setObjectName("presence_line")
        self.header_buttons = QWidget()
        buttons = QHBoxLayout(self.header_buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        for widget in (self.notify.widget, *self._actions, self.more_button):
            buttons.addWidget(widget)
        self.more_button.hide()
        header = self.header = QGridLayout()
        header.setVerticalSpacing(0)
        header.setColumnStretch(0, 1)
        self._compact: bool | None = None
        self._place_header(compact=False)

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
                avatars,
                self._avatar_of,
                lambda: state.me.get("username", ""),
                self.view,
                ticks=self.ticks_of,
            )
        )
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.view.setWordWrap(True)
        self.view.setUniformItemSizes(False)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        # Following: the list is kept at its bottom while the user was there. Decided
        # when the user scrolls, not guessed from the scroll bar at each refresh: a list
        # that shrank meanwhile (the typing line, a banner, the reply bar, a smaller
        # window) left the bar short of the new bottom, and following stopped.
        self._follow = True
        self._adjusting = False  # the view is being refilled: not the user scrolling
        self.looking = False  # the window is in front (the main window keeps it current)
        self.view.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.view.verticalScrollBar().rangeChanged.connect(self._range_changed)
        # Scrolled up while newer messages came: how many, and a click takes you there.
        self.new_messages = button(
            "", self.jump_to_newest, "new_messages", "Show the newest messages"
        )
        self.new_messages.hide()
        self.members = QListWidget()
        self.members.setObjectName("member_list")
        self.members.setItemDelegate(ContactDelegate(avatars, self.members))
        self.members.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.members.setMinimumWidth(120)
        self.members.hide()
        # Right-click a member: Block… / Unblock.
        add_user_menu(
            self.members, state.blocks, lambda item: item.text(), self.show_notice, self._me
        )
        middle = QSplitter()
        middle.setChildrenCollapsible(False)
        middle.addWidget(self.view)
        middle.addWidget(self.members)
        middle.setStretchFactor(0, 1)

        self.compose = ComposeBox()
        self.compose.setObjectName("compose")
        self.compose.setPlaceholderText("Write a message…")
        self.compose.setToolTip("Enter sends, Shift+Enter starts a new line")
        self._compose_h = 70
        self.compose.setFixedHeight(self._compose_h)
        self.compose.sendRequested.connect(self.send)
        self.compose.textChanged.connect(self.count)
        self.compose.textChanged.connect(self._typed)
        self.typing_line = QLabel()
        self.typing_line.setObjectName("typing_line")
        self.typing_line.hide()
        state.typing.changed.connect(self._typists_changed)
        self.counter = QLabel()
        self.send_button = button("Send", lambda: self.send(self.compose.toPlainText()), "send")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 0, 0)
        layout.addWidget(self.notice_bar)
        layout.addLayout(header)
        layout.addWidget(self.find_bar)
        layout.addWidget(middle, 1)
        layout.addWidget(self.new_messages, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.typing_line)
        self.message_menu = MessageMenu(self)
        layout.addWidget(self.message_menu.bar)
        layout.addWidget(self.compose)
        bottom = QHBoxLayout()
        layout.addLayout(bottom)
        bottom.addWidget(self.counter)
        bottom.addStretch(1)
        bottom.addWidget(self.send_button)
        self._loading_older = False
        state.roomChanged.connect(self._room_changed)

    def restyle(self) -> None:
        c = theme.colors()
        self.notice_bar.setStyleSheet(
            f"#noticeBar {{ background: {c.card}; border: 1px solid {c.card_border};"
            " border-radius: 8px; }"
        )
        self.title.setStyleSheet("font-size: 16px; font-weight: 600; padding: 4px 0;")
        self.presence_line.setStyleSheet(f"color: {c.muted};")
        self.view.setStyleSheet(f"QListView {{ border: none; background: {c.base}; }}")

    def fit_height(self, window_height: int) -> None:
        # A short window keeps its room for the conversation.
        self._compose_h = 70 if window_height >= 520 else 44
        self._fit_compose()
        self.place_members()

    def _fit_compose(self) -> None:
        """Disabled, the box shows why in its placeholder: tall enough for all of it
        (a narrow window wraps it to four lines), at most COMPOSE_MAX_H."""
        height = self._compose_h
        if not self.compose.isEnabled():
            margins = self.compose.contentsMargins()
            margin = 2 * self.compose.document().documentMargin()
            width = self.compose.viewport().width() - int(margin)
            text = QFontMetrics(self.compose.font()).boundingRect(
                QRect(0, 0, max(40, width), 10_000),
                Qt.TextFlag.TextWordWrap,
                self.compose.placeholderText(),
            )
            needed = text.height() + int(margin) + margins.top() + margins.bottom() + 2
            height = max(height, min(COMPOSE_MAX_H, needed))
        if self.compose.height() != height or self.compose.minimumHeight() != height:
            self.compose.setFixedHeight(height)

    def ticks_of(self, message: dict[str, Any]) -> str:
        """The read-receipt ticks one of our messages shows (conversations.receipt_ticks)."""
        key = self.state.active
        return receipt_ticks(self.state.conversation(key), message) if key else ""

    def _avatar_of(self, username: str) -> str | None:
        if username == self.state.me.get("username"):
            return self.state.my_avatar
        return self.state.friends.get(username, {}).get("avatar")

    # ------------------------------------------------------------------ header

    def refresh_header(self) -> None:
        key = self.state.active
        if key is None:
            self.title.setText("")
        else:
            private = key[0] == "room" and self.state.conversation(key).visibility == "private"
            sigil = "🔒 " if private else "# " if key[0] == "room" else "@ "
            self.title.setText(sigil + title_of(key))
            self.title.setToolTip("A private room: only its members see it" if private else "")
        is_room = key is not None and key[0] == "room"
        self._wanted = {
            "members": is_room,
            "room_settings": is_room,
            "leave_room": key is not None and is_room and key[1] != "lobby",
            "remove_friend": key is not None and key[0] == "dm" and key[1] in self.state.friends,
        }
        self.notify.refresh()
        self._fit_header()
        if not is_room and self.members.isVisible():
            self.members_button.setChecked(False)
            self.place_members()
        self.refresh_presence_line()
        self.refresh_typing_line()
        self.refresh_composer()

    def _place_header(self, compact: bool) -> None:
        """Wide: the name over the presence or topic line, the buttons beside both.
        Compact: the name across the whole width, the buttons beside the second line
        (which is elided first)."""
        if compact == self._compact:
            return
        self._compact = compact
        header = self.header
        for widget in (self.title, self.presence_line, self.header_buttons):
            header.removeWidget(widget)
        if compact:
            header.addWidget(self.title, 0, 0, 1, 2)
            header.addWidget(self.presence_line, 1, 0)
            header.addWidget(self.header_buttons, 1, 1)
        else:
            header.addWidget(self.title, 0, 0)
            header.addWidget(self.presence_line, 1, 0)
            header.addWidget(self.header_buttons, 0, 1, 2, 1)

    def _fit_header(self) -> None:
        """The buttons beside the name when the whole name fits there too; else in
        the "⋯" menu (the room's notifications button stays)."""
        wanted = [b for b in self._actions if self._wanted.get(b.objectName())]
        self.title.ensurePolished()
        name_w = QFontMetrics(self.title.font()).horizontalAdvance(self.title.full_text())
        spacing = max(0, self.header.horizontalSpacing())
        others = [self.notify.widget] if self.notify.widget.isVisibleTo(self) else []
        buttons_w = sum(b.sizeHint().width() + spacing for b in wanted + others)
        compact = bool(wanted) and name_w + 12 + buttons_w > self.contentsRect().width() - 8
        for b in self._actions:
            b.setVisible(self._wanted.get(b.objectName(), False) and not compact)
        self.more_button.setVisible(compact)
        self._place_header(compact)

    def open_more_menu(self) -> None:
        """The header's buttons that did not fit, as a menu (same names, same actions)."""
        menu = QMenu(self.more_button)
        menu.setObjectName("header_menu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for b in self._actions:
            if self._wanted.get(b.objectName()):
                action = menu.addAction(b.text())
                action.setObjectName(b.objectName())
                action.setToolTip(b.toolTip())
                action.setCheckable(b.isCheckable())
                action.setChecked(b.isChecked())
                on_click(action, b.click)
        menu.popup(self.more_button.mapToGlobal(self.more_button.rect().bottomLeft()))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_header()
        self._fit_compose()

    def _room_changed(self, key: Key) -> None:
        if key == self.state.active:
            self.refresh_header()

    def refresh_composer(self) -> None:
        key = self.state.active
        why_not = None if key is None else self._why_not_post(key)
        self.compose.setEnabled(why_not is None)
        self.send_button.setEnabled(why_not is None)
        self.compose.setPlaceholderText(why_not or "Write a message…")
        self._fit_compose()

    def _why_not_post(self, key: Key) -> str | None:
        if with_deleted_account(key):
            return "This account was deleted: you can read this conversation, no one can reply."
        if key[0] == "dm" and self.state.blocks.is_blocked(key[1]):
            return (
                f"You blocked {key[1]}: you can read this conversation but not write in "
                "it. Unblock them in the account settings (Blocked users) to write again."
            )
        if key[0] == "dm" and key[1] not in self.state.friends:
            return (
                f"{key[1]} is not your friend: you can read this conversation but not "
                "write in it. Send them a friend request to write again."
            )
        if not may_post(self.state.conversation(key)):
            return "Announcement room: only its moderators and owners post here."
        return None

    def open_settings(self) -> None:
        if self.state.active is not None:
            RoomSettingsDialog(self.state, self.chat_actions, self.state.active, self).open()

    def refresh_typing_line(self) -> None:
        text = typing_text(self.state.typing.who(self.state.active))
        self.typing_line.setText(text)
        self.typing_line.setStyleSheet(f"color: {theme.colors().muted}; font-style: italic;")
        self.typing_line.setVisible(bool(text))

    def _typists_changed(self, key: Key) -> None:
        if key == self.state.active:
            self.refresh_typing_line()

    def _typed(self) -> None:
        """Tell the others we are typing (or stopped: the box was emptied)."""
        if self.state.active is None:
            return
        if self.compose.toPlainText().strip():
            self.chat_actions.typing.typed(self.state.active)
        else:
            self.chat_actions.typing.stop(self.state.active)

    def refresh_presence_line(self) -> None:
        key = self.state.active
        friend = self.state.friends.get(key[1]) if key and key[0] == "dm" else None
        online = self.client.state == ONLINE
        topic = self.state.conversation(key).topic if key and key[0] == "room" else ""
        self.presence_line.setText(presence_text(friend, online) if friend else topic)
        self.presence_line.setVisible(friend is not None or bool(topic))

    def _me(self) -> str | None:
        return self.state.me.get("username")

    def refresh_members(self, key: Key) -> None:
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

    def toggle_members(self) -> None:
        key = self.state.active
        self.place_members()
        if key is not None and self.members.isVisible():
            self.refresh_members(key)
            self.chat_actions.load_members(key)

    def place_members(self) -> None:
        """Beside the conversation when there is room; in a narrow window instead of it
        (the conversation squeezed to a sliver is unreadable)."""
        key = self.state.active
        show = self.members_button.isChecked() and key is not None and key[0] == "room"
        narrow = self.window().width() < NARROW_FOR_MEMBERS
        self.members.setVisible(show)
        self.view.setVisible(not (show and narrow))

    # ------------------------------------------------------------------ messages

    def show_messages(self, key: Key, scroll_to_end: bool = False) -> None:
        at_end = scroll_to_end or self._follow
        first_id = self.model.messages[0].get("id") if self.model.messages else None
        self._adjusting = True
        try:
            self.model.set_messages(self.state.shown(key), self.state.me.get("username", ""))
            if at_end:
                self.view.scrollToBottom()
            elif self._loading_older and first_id is not None:
                # Older messages came in above: keep the one we were looking at in place.
                for row, message in enumerate(self.model.messages):
                    if message.get("id") == first_id:
                        self.view.scrollTo(
                            self.model.index(row), QAbstractItemView.ScrollHint.PositionAtTop
                        )
                        break
        finally:
            self._adjusting = False
        self._follow = at_end or self._at_bottom()
        self._loading_older = False
        # A row can change with no change to its message: the read-receipt ticks come
        # from the other person's marker. The model only signals changed messages, so
        # what is on screen is repainted here (a new-user trial saw ✓ stay ✓ until a click).
        self.view.viewport().update()
        self.message_menu.show_reply(key)
        self.message_menu.jump()
        self.update_reading()

    def _at_bottom(self) -> bool:
        bar = self.view.verticalScrollBar()
        return bar.value() >= bar.maximum() - FOLLOW_SLACK

    def _range_changed(self, _low: int, high: int) -> None:
        """The list's height or its content's changed (rows added, a taller row, the
        list shrunk by the typing line or a banner): still at the bottom if following."""
        if self._follow:
            self.view.verticalScrollBar().setValue(high)

    def _scrolled(self, value: int) -> None:
        if not self._adjusting:
            self._follow = self._at_bottom()
            self.update_reading()
        if value == 0 and self.state.active and self.model.messages:
            self._loading_older = True
            self.chat_actions.load_older(self.state.active)

    def jump_to_newest(self) -> None:
        self.view.scrollToBottom()
        self.compose.setFocus()

    def update_reading(self) -> None:
        """What the user sees is read: everything while the window is in front and the
        list at its bottom (state.watching: what arrives then is read as it comes);
        scrolled up, only up to the last message wholly on screen, the newer ones
        staying unread, and the "new messages" button says how many."""
        key = self.state.active
        self.state.set_watching(self.looking and self._follow)
        conv = self.state.conversation(key) if key is not None else None
        if conv is not None and self.looking and not self._follow:
            seq = self._last_shown_seq()
            if seq is not None and self.state.mark_read(conv, through=seq):
                self.state.conversationChanged.emit(conv.key)
        unread = conv.unread if conv is not None else 0
        if not self._follow and unread:
            plural = "" if unread == 1 else "s"
            more = "+" if conv is not None and conv.unread_capped else ""
            self.new_messages.setText(f"↓ {unread}{more} new message{plural}")
            self.new_messages.show()
        else:
            self.new_messages.hide()

    def _last_shown_seq(self) -> int | None:
        """The seq of the newest message wholly on screen (None: none is)."""
        viewport = self.view.viewport().rect()
        index = self.view.indexAt(QPoint(viewport.width() // 2, viewport.bottom()))
        row = index.row() if index.isValid() else self.model.rowCount() - 1
        while row >= 0:
            rect = self.view.visualRect(self.model.index(row))
            if rect.bottom() <= viewport.bottom() and rect.top() >= viewport.top() - 1:
                break
            if rect.bottom() < viewport.top():
                return None
            row -= 1
        for message in reversed(self.model.messages[: row + 1]):
            if message.get("seq"):
                return int(message["seq"])
        return None

    def count(self) -> None:
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
        self.chat_actions.typing.stop(self.state.active)
        self.chat_actions.send(self.state.active, text, self.message_menu.take_reply())
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

    # ------------------------------------------------------------------ banner, Esc

    def escape(self) -> None:
        if self.find_bar.isVisible():
            self.hide_find()
        elif self.notice_bar.isVisible():
            self.hide_notice()
        elif self.members.isVisible():
            self.members_button.setChecked(False)
            self.place_members()

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice_bar.show()
        self._notice_timer.start(NOTICE_MS)

    def hide_notice(self) -> None:
        self.notice_bar.hide()
