"""The main window: the top bar (your picture and status, the connection, Activity,
Add friend) over the side panel (client.side_panel) and the open conversation
(client.conversation_pane); the keyboard shortcuts, the window title's unread count,
notifications, and the actions that open a dialog or ask for a confirmation.

Every button goes through `ui.on_click` (see ui.py for why). Dialogs open without
blocking, so messages keep arriving while one is open and tests answer them as a
person does.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from . import theme
from .account_dialog import AccountDialog
from .actions import ChatActions
from .avatars import AvatarCache
from .conversation_pane import ConversationPane
from .conversations import room_key
from .dialogs import ActivityDialog, RoomDialog, SwitcherDialog
from .net import CONNECTING, ONLINE, RECONNECTING, ChatClient
from .notify import Notifier
from .profile_dialog import ProfileDialog
from .side_panel import SidePanel
from .state import ChatState
from .ui import ElidedLabel, ask_text, button, confirm

STATE_LOOK = {
    ONLINE: ("Online", "online"),
    RECONNECTING: ("Reconnecting…", "warning"),
    CONNECTING: ("Connecting…", "warning"),
}
REFRESH_MS = 50


class MainWindow(QMainWindow):
    signOutRequested = Signal()
    accountDeleted = Signal()
    closed = Signal()  # the user closed the window: the app is quitting

    def __init__(
        self, client: ChatClient, state: ChatState, actions: ChatActions, avatars: AvatarCache
    ) -> None:
        super().__init__()
        self.client = client
        self.state = state
        self.chat_actions = actions
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

        # -- left: rooms, requests, friends; right: the open conversation
        self.side = SidePanel(
            client, state, avatars, self.open, self.join_room, self.answer_request
        )
        self.chat = ConversationPane(
            client, state, actions, avatars, self.leave_room, self.remove_friend
        )
        self.splitter = QSplitter()
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.side)
        self.splitter.addWidget(self.chat)
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
            ("Ctrl+F", self.chat.show_find),
            ("Esc", self.chat.escape),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(action)

        state.conversationChanged.connect(self._conversation_changed)
        state.conversationsChanged.connect(self._refresh_lists)
        state.conversationClosed.connect(lambda _key: self.open(room_key("lobby")))
        state.conversationRenamed.connect(self._conversation_renamed)
        state.blocks.changed.connect(self._blocks_changed)
        state.friendsChanged.connect(self._refresh_friends)
        state.requestsChanged.connect(self.side.refresh_requests)
        state.profileChanged.connect(self._refresh_profile)
        state.notice.connect(self.chat.show_notice)
        state.activityChanged.connect(self._refresh_activity)
        state.membersChanged.connect(self.chat.refresh_members)
        state.unreadChanged.connect(self._refresh_title)
        state.alert.connect(self._alert)
        state.avatarChanged.connect(lambda *_: self._repaint())
        avatars.loaded.connect(lambda _h: self._repaint())
        client.stateChanged.connect(self._connection_changed)
        self._changed: set[tuple[str, str]] = set()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._catch_up)
        self.restyle()
        self.chat.count()

    # ------------------------------------------------------------------ startup

    def start(self) -> None:
        self._refresh_profile()
        self._refresh_lists()
        self.side.refresh_requests()
        self._refresh_activity()
        self._refresh_title()
        self._connection_changed(self.client.state)
        self.open(room_key("lobby"))

    def restyle(self) -> None:
        c = theme.colors()
        self.me_name.setStyleSheet("font-weight: 600;")
        self.me_status.setStyleSheet(f"color: {c.muted};")
        self.chat.restyle()
        self.side.restyle()
        self._connection_changed(self.client.state)
        self.chat.count()
        self._repaint()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        super().closeEvent(event)
        self.notifier.close()
        self.closed.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.chat.fit_height(self.height())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ActivationChange, QEvent.Type.WindowStateChange):
            # In front: what the conversation shows is read (all of it at the bottom).
            self.chat.looking = self.isActiveWindow() and not self.isMinimized()
            self.chat.update_reading()

    # ------------------------------------------------------------------ refresh

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

    def _refresh_lists(self) -> None:
        self.side.refresh_rooms()
        self._refresh_friends()
        self.chat.refresh_header()

    def _refresh_friends(self) -> None:
        self.side.refresh_friends()
        self.chat.refresh_presence_line()
        self.chat.refresh_header()  # a friendship that ended: its chat can only be read

    def _refresh_activity(self) -> None:
        dialog_open = self.activity_dialog is not None and self.activity_dialog.isVisible()
        if dialog_open and self.state.new_activity:
            self.state.saw_activity()  # comes back here with nothing new
            return
        new = self.state.new_activity
        self.activity_button.setText(f"Activity ({new})" if new > 0 else "Activity")

    def _repaint(self) -> None:
        self.chat.view.viewport().update()
        self.side.friends.viewport().update()
        self._refresh_profile()
        self._refresh_friends()

    def _connection_changed(self, status: str) -> None:
        text, role = STATE_LOOK.get(status, ("Offline", "error"))
        color = getattr(theme.colors(), role)
        self.connection.setText(f"● {text}")
        self.connection.setStyleSheet(f"color: {color}; font-weight: 600; padding: 0 6px;")
        self._refresh_friends()  # friends' presence is unknown while we are not online

    # ------------------------------------------------------------------ conversation

    def open(self, key: tuple[str, str]) -> None:
        self.chat_actions.open_conversation(key)
        self.chat.hide_find()
        self.chat.show_messages(key, scroll_to_end=True)
        self._refresh_lists()
        if self.chat.members_button.isChecked() and key[0] == "room":
            self.chat_actions.load_members(key)
        self.chat.compose.setFocus()

    def _blocks_changed(self) -> None:
        """Someone blocked or unblocked: their messages go from view or come back."""
        if self.state.active is not None:
            self.chat.show_messages(self.state.active)
        self._refresh_lists()

    def _conversation_renamed(self, _old: tuple[str, str], new: tuple[str, str]) -> None:
        if self.state.active == new:
            self.open(new)  # the header, the composer's reason and the list follow
        else:
            self._refresh_lists()

    def _conversation_changed(self, key: tuple[str, str]) -> None:
        # A busy room changes many times a second: the view and the lists catch up
        # once per REFRESH_MS, not once per message.
        self._changed.add(key)
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _catch_up(self) -> None:
        changed, self._changed = self._changed, set()
        if self.state.active in changed:
            self.chat.show_messages(self.state.active)
            self.chat.notify.refresh()  # the level may have changed on another device
        self.side.refresh_rooms()
        self._refresh_friends()

    # ------------------------------------------------------------------ actions

    def _report(self, success: str) -> Any:
        def done(reply: dict) -> None:
            self.chat.show_notice(success if reply.get("ok") else reply["error"]["message"])

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
            self.chat_actions.request_friend(
                username, self._report(f"Friend request sent to {username}")
            )

        ask_text(self, "Add friend", "Their username:", ask, "add_friend_dialog")

    def answer_request(self, username: str, accept: bool) -> None:
        verb = "accepted" if accept else "rejected"
        self.chat_actions.answer_request(
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
            lambda: self.chat_actions.remove_friend(username, self._after_removal(username)),
            "confirm_remove_friend",
        )

    def _after_removal(self, username: str) -> Any:
        def done(reply: dict) -> None:
            if reply.get("ok"):
                self.chat.show_notice(f"{username} is no longer your friend")
                self.open(room_key("lobby"))
            else:
                self.chat.show_notice(reply["error"]["message"])

        return done

    def join_room(self) -> None:
        def joined(reply: dict) -> None:
            self.open(room_key(reply["room"]["name"]))

        dialog = RoomDialog(self.chat_actions, joined, self)
        dialog.open()
        dialog.query.setFocus()

    def leave_room(self) -> None:
        key = self.state.active
        if key is None or key[0] != "room" or key[1] == "lobby":
            return
        name = key[1]

        def left(reply: dict) -> None:
            if reply.get("ok"):
                self.chat.show_notice(f"You left #{name}")
                self.open(room_key("lobby"))
            else:
                self.chat.show_notice(reply["error"]["message"])

        confirm(
            self,
            "Leave room",
            f"Leave #{name}? You can join it again later.",
            "Leave",
            lambda: self.chat_actions.leave_room(name, left),
            "confirm_leave_room",
        )

    def edit_profile(self) -> None:
        dialog = ProfileDialog(self.client, self.state, self.avatars, self)
        dialog.signOutRequested.connect(self.signOutRequested)
        dialog.accountSettingsRequested.connect(self.edit_account)
        dialog.open()

    def edit_account(self) -> None:
        dialog = AccountDialog(self.client, self.chat_actions, self, self.state.blocks)
        dialog.accountDeleted.connect(self.accountDeleted)
        dialog.open()
