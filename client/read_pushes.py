"""What the server tells this client about reading and being told (docs/protocol.md,
Read markers; Mentions and notification levels): our marker moved on another device
(`read`), the other person of a direct chat read it (`read.receipt`, when both of us
share receipts), we switched receipts on another device (`read.receipts`), a room's
notification level changed on another device (`room.notify`); and the same settings as
the login snapshot and `sync` carry them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatroom.protocol import Event

from .conversations import Conversation

if TYPE_CHECKING:
    from .state import ChatState


class ReadPushes:
    def __init__(self, state: ChatState) -> None:
        self.state = state

    def pushes(self) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {
            Event.READ: self.read,
            Event.READ_RECEIPT: self.receipt,
            Event.READ_RECEIPTS: self.receipts_switched,
            Event.ROOM_NOTIFY: self.notify_level,
        }

    def settings_of(self, conv: Conversation, entry: dict[str, Any]) -> None:
        """A conversation's entry of the login snapshot or of sync's `read`: its
        notification level (rooms) and the other person's marker (a direct chat whose
        two people share receipts; absent otherwise)."""
        conv.notify = entry.get("notify", conv.notify)
        if conv.key[0] == "dm":
            conv.peer_read_seq = entry.get("peer_read_seq")

    def read(self, event: dict[str, Any]) -> None:
        """Read up to `seq` on another of our devices."""
        conv = self.state.by_room_id(event["room_id"])
        if conv is not None:
            self.state.apply_read(conv, {**event, "read_seq": event["seq"]}, conv.last_seq)
            self.state.conversationChanged.emit(conv.key)

    def receipt(self, event: dict[str, Any]) -> None:
        """The other person read our direct chat up to `seq` (markers only grow)."""
        conv = self.state.by_room_id(event["room_id"])
        if conv is not None:
            conv.peer_read_seq = max(conv.peer_read_seq or 0, event["seq"])
            self.state.conversationChanged.emit(conv.key)

    def receipts_switched(self, event: dict[str, Any]) -> None:
        self.state.read_receipts = bool(event["enabled"])
        if not self.state.read_receipts:
            for conv in self.state.conversations.values():
                conv.peer_read_seq = None  # nobody's marker is shown to us now
        self.state.settingsChanged.emit()
        self.state.sync()  # turned on: the markers of those who share come with it

    def notify_level(self, event: dict[str, Any]) -> None:
        conv = self.state.by_room_id(event["room_id"])
        if conv is not None:
            conv.notify = event["level"]
            self.state.conversationChanged.emit(conv.key)
