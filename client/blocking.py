"""Blocking in the client: whom the user blocks (from the login snapshot, kept current by
the block.added / block.removed pushes and our own replies), the requests to block or
unblock someone, and the right-click menu of a user (friend list, member list) that
offers them. The server hides a blocked user's room messages itself (docs/protocol.md,
Blocking); the client keeps the list, hides what they said before the block
(ChatState.shown), fetches what they said during it when it ends, and drops their
friend requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtWidgets import QListWidget, QMenu, QWidget

from chatroom.protocol import Event

from .ui import confirm, on_click

if TYPE_CHECKING:
    from .net import ChatClient
    from .state import ChatState

Callback = Callable[[dict[str, Any]], None]


class BlockList(QObject):
    changed = Signal()

    def __init__(self, client: ChatClient, state: ChatState) -> None:
        super().__init__(state)
        self.client, self.state = client, state
        self.users: dict[str, dict[str, Any]] = {}  # username -> {"id", "username", "since"}
        client.loggedIn.connect(self._load)
        client.resumed.connect(self._load)
        client.eventReceived.connect(self._on_event)

    def is_blocked(self, username: str) -> bool:
        return username in self.users

    def block(self, username: str, done: Callback) -> None:
        def blocked(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self._added({**reply["user"], "since": reply["since"]})
            done(reply)

        self.client.request("block.add", {"username": username}, blocked)

    def unblock(self, username: str, done: Callback) -> None:
        def unblocked(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self._removed(reply["user"]["username"])
            done(reply)

        self.client.request("block.remove", {"username": username}, unblocked)

    def _load(self, reply: dict[str, Any]) -> None:
        self.users = {u["username"]: u for u in reply.get("blocked", [])}
        self.changed.emit()

    def _on_event(self, event: dict[str, Any]) -> None:
        if event["event"] == Event.BLOCK_ADDED:
            self._added(event["user"])
        elif event["event"] == Event.BLOCK_REMOVED:
            self._removed(event["user"]["username"])

    def _added(self, user: dict[str, Any]) -> None:
        name = user["username"]
        self.users[name] = user
        # The server dropped pending requests between us (the friendship's end comes
        # as its own friend.removed push).
        self.state.drop_incoming(name)
        self.state.outgoing = [r for r in self.state.outgoing if r["user"]["username"] != name]
        self.state.friendsChanged.emit()
        self.changed.emit()

    def _removed(self, username: str) -> None:
        if self.users.pop(username, None) is not None:
            self.changed.emit()
            self.state.refill_rooms()  # what they said meanwhile, now sent to us


def ask_block(
    parent: QWidget, blocks: BlockList, username: str, said: Callable[[str], None]
) -> None:
    """Confirm, then block `username`; `said` tells the user how it went."""

    def done(reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            said(f"You blocked {username}. Unblock them in Account settings.")
        else:
            said(reply["error"].get("message", "blocking did not work; try again"))

    confirm(
        parent,
        "Block user",
        f"Block {username}? They will not be able to message you or send you friend "
        "requests, you will not see their messages in rooms, and if you are friends the "
        "friendship ends. They are not told.",
        "Block",
        lambda: blocks.block(username, done),
        "confirm_block",
    )


def unblock_now(blocks: BlockList, username: str, said: Callable[[str], None]) -> None:
    def done(reply: dict[str, Any]) -> None:
        if reply.get("ok"):
            said(f"You unblocked {username}.")
        else:
            said(reply["error"].get("message", "unblocking did not work; try again"))

    blocks.unblock(username, done)


def add_user_menu(
    listing: QListWidget,
    blocks: BlockList,
    name_of: Callable[[Any], str | None],
    said: Callable[[str], None],
    me: Callable[[], str | None],
) -> None:
    """Right-click a row of `listing` (a user: `name_of(item)`) for Block… / Unblock."""

    def open_menu(pos: QPoint) -> None:
        item = listing.itemAt(pos)
        username = name_of(item) if item is not None else None
        if not username or username == me():
            return
        menu = QMenu(listing)
        menu.setObjectName("user_menu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if blocks.is_blocked(username):
            action = menu.addAction(f"Unblock {username}")
            action.setObjectName("unblock")
            on_click(action, lambda: unblock_now(blocks, username, said))
        else:
            action = menu.addAction(f"Block {username}…")
            action.setObjectName("block")
            on_click(action, lambda: ask_block(listing, blocks, username, said))
        menu.popup(listing.viewport().mapToGlobal(pos))

    listing.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    listing.customContextMenuRequested.connect(open_menu)
