"""What a person does to a message: right-click it for Reply, Edit… (their own, within
the server's edit window) and Delete… (their own, after a confirmation), or, for one
the server refused, Send again and Remove; a reply is
composed under a "Replying to …" bar and shows the original quoted; clicking a reply
jumps to the original (loading older history until it is there)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QLabel, QMenu, QWidget

from .blocking import ask_block
from .conversations import FAILED, moderates
from .ui import ElidedLabel, ask_lines, button, confirm, on_click
from .widgets import MESSAGE_ROLE

if TYPE_CHECKING:
    from .conversation_pane import ConversationPane, Key

JUMP_TRIES = 20  # history pages loaded looking for a reply's original


class MessageMenu:
    """The message list's context menu and the reply bar of one ConversationPane."""

    def __init__(self, pane: ConversationPane) -> None:
        self.pane = pane
        # The message each conversation's reply bar answers: the bar belongs to the
        # conversation it was opened in (a trial found it followed the user to another
        # chat, where the reply was refused: no such message in that conversation).
        self.replying: dict[Key, dict[str, Any]] = {}
        self._jump: tuple[int, int] | None = None  # (message id, tries left)
        view = pane.view
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self.open_menu)
        # An item view's clicked(index) carries the index, not a button's `checked`.
        view.clicked.connect(self.clicked)
        self.bar = QWidget()
        self.bar.setObjectName("reply_bar")
        row = QHBoxLayout(self.bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = ElidedLabel()
        self.label.setObjectName("reply_label")
        row.addWidget(QLabel("↪"))
        row.addWidget(self.label, 1)
        close = button("×", self.cancel_reply, "cancel_reply", "Do not reply")
        close.setFlat(True)
        close.setFixedWidth(24)
        row.addWidget(close)
        self.bar.hide()

    # ------------------------------------------------------------------ the menu

    def open_menu(self, pos: QPoint) -> None:
        index = self.pane.view.indexAt(pos)
        message = index.data(MESSAGE_ROLE) if index.isValid() else None
        if message and message.get("state") == FAILED:
            self._failed_menu(message, pos)
            return
        if not message or not message.get("id") or message.get("deleted"):
            return  # pending or deleted: nothing to do with it
        if message.get("kind") == "event":
            return  # a moderation line, not a message
        menu = QMenu(self.pane.view)
        menu.setObjectName("message_menu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        reply = menu.addAction("Reply")
        reply.setObjectName("reply")
        on_click(reply, lambda: self.start_reply(message))
        mine = message["from"]["username"] == self.pane.state.me.get("username")
        if mine and self._editable(message):
            edit = menu.addAction("Edit…")
            edit.setObjectName("edit")
            on_click(edit, lambda: self.ask_edit(message))
        # A room's moderators delete others' messages too (the server says no to those
        # ranked as high as they are).
        key = self.pane.state.active
        if mine or (key is not None and moderates(self.pane.state.conversation(key))):
            delete = menu.addAction("Delete…")
            delete.setObjectName("delete")
            on_click(delete, lambda: self.ask_delete(message))
        # Anyone else's message, a moderator's view included (a new user's trial missed
        # it there), offers to block its author.
        author = message["from"]["username"]
        if not mine and not self.pane.state.blocks.is_blocked(author):
            block = menu.addAction(f"Block {author}…")
            block.setObjectName("block")
            blocks, said = self.pane.state.blocks, self.pane.show_notice
            on_click(block, lambda: ask_block(self.pane, blocks, author, said))
        menu.popup(self.pane.view.viewport().mapToGlobal(pos))

    def _failed_menu(self, message: dict[str, Any], pos: QPoint) -> None:
        """A message the server refused: send it again, or remove it."""
        key = self.pane.state.active
        if key is None:
            return
        menu = QMenu(self.pane.view)
        menu.setObjectName("failed_menu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        again = menu.addAction("Send again")
        again.setObjectName("resend")
        on_click(again, lambda: self.pane.chat_actions.resend(key, message))
        remove = menu.addAction("Remove")
        remove.setObjectName("discard")
        on_click(remove, lambda: self.pane.chat_actions.discard(key, message))
        menu.popup(self.pane.view.viewport().mapToGlobal(pos))

    def _editable(self, message: dict[str, Any]) -> bool:
        window_s = self.pane.client.limits.get("edit_window_s")
        if window_s is None or not message.get("ts"):
            return window_s is None
        return time.time() * 1000 - message["ts"] < window_s * 1000

    def ask_edit(self, message: dict[str, Any]) -> None:
        key = self.pane.state.active
        if key is None:
            return

        def save(text: str) -> None:
            if text != message["text"]:  # unchanged: no "(edited)" for nothing
                self.pane.chat_actions.change_message(key, message, text, self._done)

        ask_lines(self.pane, "Edit message", message["text"], save, "edit_message")

    def ask_delete(self, message: dict[str, Any]) -> None:
        key = self.pane.state.active
        if key is None:
            return
        confirm(
            self.pane,
            "Delete message",
            "Delete this message for everyone? This cannot be undone.",
            "Delete",
            lambda: self.pane.chat_actions.change_message(key, message, None, self._done),
            "delete_message",
        )

    def _done(self, reply: dict[str, Any]) -> None:
        if not reply.get("ok"):
            self.pane.show_notice(reply["error"].get("message", "that did not work"))

    # ------------------------------------------------------------------ replies

    def start_reply(self, message: dict[str, Any]) -> None:
        key = self.pane.state.active
        if key is None:
            return
        self.replying[key] = message
        self.show_reply(key)
        self.pane.compose.setFocus()

    def show_reply(self, key: Key) -> None:
        """The reply bar as conversation `key` has it (called whenever it is shown or
        changes): the message as it is now, edited or not; none once it is deleted."""
        message = self._answered(key)
        if message is None:
            self.bar.hide()
            return
        text = message["text"].replace("\n", " ")
        self.label.setText(f"Replying to {message['from']['username']}: {text}")
        self.bar.show()

    def _answered(self, key: Key) -> dict[str, Any] | None:
        message = self.replying.get(key)
        if message is None:
            return None
        now = next(
            (m for m in self.pane.state.conversation(key).messages if m.get("id") == message["id"]),
            message,  # not loaded any more: as it was
        )
        if now.get("deleted"):
            del self.replying[key]
            self.pane.show_notice("The message you were replying to was deleted.")
            return None
        self.replying[key] = now
        return now

    def cancel_reply(self) -> None:
        if self.pane.state.active is not None:
            self.replying.pop(self.pane.state.active, None)
        self.bar.hide()

    def take_reply(self) -> dict[str, Any] | None:
        """The message the open conversation's reply answers (once: the bar closes)."""
        key = self.pane.state.active
        replying = self._answered(key) if key is not None else None
        self.cancel_reply()
        return replying

    def clicked(self, index: QModelIndex) -> None:
        quoted = (index.data(MESSAGE_ROLE) or {}).get("reply_to")
        if quoted:
            self._jump = (quoted["id"], JUMP_TRIES)
            self.jump()

    def jump(self) -> None:
        """Scroll to the original of the reply last clicked, once it is loaded (called
        again whenever the messages change while older pages load)."""
        if self._jump is None or self.pane.state.active is None:
            return
        message_id, tries = self._jump
        conv = self.pane.state.conversation(self.pane.state.active)
        row = next(
            (n for n, m in enumerate(self.pane.model.messages) if m.get("id") == message_id), -1
        )
        if row >= 0:
            self._jump = None
            self.pane.view.scrollTo(
                self.pane.model.index(row), QAbstractItemView.ScrollHint.PositionAtCenter
            )
            self.pane.model.set_found(row)
        elif tries > 0 and conv.has_more:
            self._jump = (message_id, tries - 1)
            self.pane.chat_actions.load_older(conv.key)
        else:
            self._jump = None
            self.pane.show_notice("The original message is no longer there.")
