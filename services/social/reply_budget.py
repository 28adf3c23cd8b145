"""Bounding `sync`, `room.history` and `dm.history` replies by their encoded size.

A count limit alone does not bound a reply: 500 messages of 4,000 control characters
(each JSON-escaped to 6 bytes) make a 12 MB frame, above a client's frame cap and the
edge's slow-reader cap. Messages are measured as they will be sent (their JSON, with
orjson: a few microseconds each) and taken while they fit in the budget
(CHAT_MAX_REPLY_BYTES); the reply then says has_more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chatroom.framing import dumps


def encoded_size(obj: dict[str, Any]) -> int:
    """Bytes `obj` adds to a reply: its JSON and the comma before the next item."""
    return len(dumps(obj)) + 1


class ReplyBudget:
    """The bytes a reply's messages (and conversation headers) may still take.

    The first take always succeeds, however large, so a client that follows has_more
    always makes progress (one message is at most max_text_chars * 6 bytes of JSON,
    and the settings keep the budget far below the frame limit)."""

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.empty = True
        self.refused = False  # something did not fit: the reply is full

    def take(self, size: int) -> bool:
        """Spend `size` bytes if they fit (or nothing has been taken yet)."""
        if not self.empty and size > self.left:
            self.refused = True
            return False
        self.left -= size
        self.empty = False
        return True

    def take_leading(self, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items, in order, up to the first one that does not fit."""
        taken = []
        for item in items:
            if not self.take(encoded_size(item)):
                break
            taken.append(item)
        return taken
