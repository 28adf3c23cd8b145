"""The room header's "Notifications" button: a menu of the three levels (docs/protocol.md,
Mentions and notification levels), the current one checked. The level is the server's
(room.notify), so all the user's devices follow it; it decides which room messages
alert (ChatState._alert_for), never what is delivered or counted."""

from __future__ import annotations

from functools import partial
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu, QPushButton

from .actions import ChatActions
from .ui import button, on_click

LEVELS = (
    ("all", "All messages"),
    ("mentions", "Mentions only"),
    ("none", "None"),
)
# The button's face: the level in a word, on a button as big as its neighbours (it was
# a bare 🔔 on a button squeezed to 48 px, easy to miss). In a narrow window the other
# header buttons give way to it (ConversationPane._fit_header); the tooltip says more.
FACES = {"all": "🔔 All", "mentions": "🔔 Mentions", "none": "🔕 None"}


class NotifyButton:
    """The header button and its menu, for the open room."""

    def __init__(self, actions: ChatActions, tell: Any) -> None:
        self.actions = actions
        self.tell = tell  # (text) -> None: the pane's notice line
        self.widget: QPushButton = button(
            "Notifications", self.open_menu, "notify", "What this room notifies you about"
        )

    def refresh(self) -> None:
        key = self.actions.state.active
        room = key is not None and key[0] == "room"
        self.widget.setVisible(room)
        if room and key is not None:
            level = self.actions.state.conversation(key).notify
            self.widget.setText(FACES.get(level, level))
            said = dict(LEVELS).get(level, level)
            self.widget.setToolTip(f"Notifications: {said} (click to change)")

    def open_menu(self) -> None:
        key = self.actions.state.active
        if key is None or key[0] != "room":
            return
        current = self.actions.state.conversation(key).notify
        menu = QMenu(self.widget)
        menu.setObjectName("notify_menu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for level, text in LEVELS:
            action = menu.addAction(f"Notifications: {text}")
            action.setObjectName(f"notify:{level}")
            action.setCheckable(True)
            action.setChecked(level == current)
            on_click(action, partial(self.choose, key, level))
        menu.popup(self.widget.mapToGlobal(self.widget.rect().bottomLeft()))

    def choose(self, key: tuple[str, str], level: str) -> None:
        def done(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                self.tell(f"Could not change notifications: {reply['error']['message']}")

        self.actions.set_notify(key, level, done)
