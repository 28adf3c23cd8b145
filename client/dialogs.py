"""Small windows of the main window: the activity list, the conversation switcher
(Ctrl+K) and the room chooser. They are non-modal, read ChatState and act through
ChatActions; none of them touches the socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from .actions import ChatActions
from .state import ChatState
from .ui import HintListWidget, button
from .widgets import format_time

SEARCH_PAUSE_MS = 250  # typing pause after which the room chooser asks the server


def room_summary(room: dict[str, Any]) -> str:
    """What the room chooser says of a room beside its name: how many are in it (the
    lobby counts no members: everyone is in it), and whether we are."""
    if room.get("kind") == "public":
        size = "everyone"
    else:
        count = room.get("members", 0)
        size = f"{count} member{'' if count == 1 else 's'}"
    return size + (" · joined" if room.get("joined") else "")


class ActivityDialog(QDialog):
    """Friend requests and their answers, newest first: nothing said in a banner is
    lost when the banner goes."""

    def __init__(self, state: ChatState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("activity")
        self.setWindowTitle("Activity")
        self.state = state
        self.list = HintListWidget()
        self.list.hint = "Nothing yet. Friend requests and their answers show up here."
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(button("Close", self.close, "close"), 0, Qt.AlignmentFlag.AlignRight)
        self.resize(380, 420)
        state.activityChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for entry in reversed(self.state.activity):
            self.list.addItem(f"{format_time(entry['ts'])}  {entry['text']}")

    def texts(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]


class SwitcherDialog(QDialog):
    """Type part of a room or friend name, Enter opens it (Ctrl+K)."""

    def __init__(
        self,
        state: ChatState,
        open_key: Callable[[tuple[str, str]], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("switcher")
        self.setWindowTitle("Switch conversation")
        self.state = state
        self.open_key = open_key
        self.query = QLineEdit()
        self.query.setObjectName("switcher_query")
        self.query.setPlaceholderText("Room or friend…")
        self.list = HintListWidget()
        self.list.hint = "No conversation matches."
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.query)
        layout.addWidget(self.list)
        self.resize(360, 320)
        self.query.textChanged.connect(self.refresh)
        self.query.returnPressed.connect(self.choose)
        self.list.itemActivated.connect(lambda _item: self.choose())
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.refresh()

    def _candidates(self) -> list[tuple[str, tuple[str, str]]]:
        rows: list[tuple[str, Any]] = []
        for key, conv in self.state.conversations.items():
            if key[0] == "dm" and key[1] not in self.state.friends:
                continue
            prefix = "#" if key[0] == "room" else "@"
            rows.append((f"{prefix} {conv.title}", key))
        # Unread first, then by name.
        rows.sort(key=lambda r: (-self.state.conversation(r[1]).unread, r[0].casefold()))
        return rows

    def refresh(self) -> None:
        wanted = self.query.text().strip().casefold()
        self.list.clear()
        for label, key in self._candidates():
            if wanted in label.casefold():
                item = QListWidgetItem(label)
                item.setData(Qt.ItemDataRole.UserRole, key)
                self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def choose(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.open_key(item.data(Qt.ItemDataRole.UserRole))
            self.accept()


class RoomDialog(QDialog):
    """Join a room from the list of existing ones (filtered as you type), or create a
    new one under the typed name: a typo shows "no room matches", not a new room."""

    def __init__(
        self,
        actions: ChatActions,
        joined: Callable[[dict[str, Any]], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("rooms_dialog")
        self.setWindowTitle("Join or create a room")
        self.chat_actions = actions
        self.joined = joined
        self.rooms: list[dict[str, Any]] = []
        self.more = False  # the server has more matching rooms than it sent
        self.query = QLineEdit()
        self.query.setObjectName("room_query")
        self.query.setPlaceholderText("Room name…")
        self.list = HintListWidget()
        self.list.setObjectName("room_list")
        self.list.hint = "Loading rooms…"
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.join_button = button("Join", self.join, "join")
        self.create_button = button("Create", self.create_room, "create")
        # A new room is public (listed, anyone joins) unless this is ticked.
        self.private = QCheckBox("Private")
        self.private.setObjectName("private")
        self.private.setToolTip("Invisible to others; people join when a moderator invites them")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.private)
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.join_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.query)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.resize(380, 360)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        # The server searches (a server may have more rooms than one reply carries):
        # the list filters at once as you type, and asks again once typing pauses.
        self.listed_for: str | None = None  # the query the rooms below answer
        self._ask = QTimer(self)
        self._ask.setSingleShot(True)
        self._ask.setInterval(SEARCH_PAUSE_MS)
        self._ask.timeout.connect(self._search)
        self.query.textChanged.connect(self._typed)
        self.query.returnPressed.connect(self._enter)
        self.list.itemActivated.connect(lambda _item: self.join())
        self.list.currentItemChanged.connect(lambda *_: self._buttons())
        self._search()
        self.refresh()

    def _typed(self) -> None:
        self.refresh()
        self._ask.start()

    def _search(self) -> None:
        query = self.query.text().strip()
        self.chat_actions.list_rooms(query, lambda reply: self._listed(query, reply))

    def _listed(self, query: str, reply: dict[str, Any]) -> None:
        if not isValid(self.query):
            return  # the dialog closed (a room made or joined) before this answer came
        if query != self.query.text().strip():
            return  # an answer to what was typed before; a newer one is coming
        if not reply.get("ok"):
            self.list.hint = reply["error"]["message"]
            return
        self.rooms = sorted(reply["rooms"], key=lambda r: r["name"].casefold())
        self.listed_for = query
        self.more = bool(reply.get("has_more"))
        self.list.hint = "No room matches: Create makes one with this name."
        self.refresh()

    def refresh(self) -> None:
        wanted = self.query.text().strip().casefold()
        self.list.clear()
        for room in self.rooms:
            if wanted in room["name"].casefold():
                item = QListWidgetItem(f"{room['name']}  ({room_summary(room)})")
                item.setData(Qt.ItemDataRole.UserRole, room["name"])
                self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        self.message.setText("More rooms match: type more of the name." if self.more else "")
        self._buttons()

    def _exists(self, name: str) -> bool:
        return any(r["name"].casefold() == name.casefold() for r in self.rooms)

    def _buttons(self) -> None:
        name = self.query.text().strip()
        self.join_button.setEnabled(self.list.currentItem() is not None)
        self.create_button.setEnabled(bool(name) and not self._exists(name))
        self.create_button.setText(f"Create “{name}”" if name else "Create")
        self.join_button.setDefault(self.join_button.isEnabled())

    def _enter(self) -> None:
        if self.join_button.isEnabled():
            self.join()

    def _done(self, reply: dict[str, Any]) -> None:
        # The dialog may be gone (closed while the request was out): the room is
        # still joined and opened, only the dialog's own widgets are not touched.
        if reply.get("ok"):
            self.joined(reply)
            if isValid(self):
                self.accept()
        elif isValid(self.message):
            self.message.setText(reply["error"]["message"])

    def join(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.chat_actions.join_room(item.data(Qt.ItemDataRole.UserRole), self._done)

    def create_room(self) -> None:
        name = self.query.text().strip()
        if name:
            self.chat_actions.create_room(name, self._done, self.private.isChecked())
