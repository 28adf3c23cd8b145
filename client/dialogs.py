"""Small windows of the main window: the activity list and the conversation switcher
(Ctrl+K). Both are non-modal and read ChatState; neither touches the socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLineEdit, QListWidgetItem, QVBoxLayout, QWidget

from .state import ChatState
from .ui import HintListWidget
from .widgets import format_time


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
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
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
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.query)
        layout.addWidget(self.list)
        self.resize(360, 320)
        self.query.textChanged.connect(self.refresh)
        self.query.returnPressed.connect(self.choose)
        self.list.itemActivated.connect(lambda _item: self.choose())
        self.setAttribute(Qt.WA_DeleteOnClose)
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
                item.setData(Qt.UserRole, key)
                self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def choose(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.open_key(item.data(Qt.UserRole))
            self.accept()
