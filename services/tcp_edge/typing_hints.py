"""Typing indicators, coalesced at the edge.

A client sends ``typing`` with ``on: true`` as the user types (it may send one per
keystroke) and ``on: false`` when they stop or send. Social checks membership and
publishes each one it gets to the other members, so the edge forwards only what changes
what they see: the first ``on`` for a conversation, then at most one renewal every
TYPING_RENEW_S while it stays on, and an ``off`` only after an ``on``. Everything else
is answered here at once without a bus round trip. Only forwarded hints spend from the
``typing`` rate bucket, so an ordinary client (one hint per keystroke) is never limited.

Nothing is stored anywhere: a push carries ``expires_ms`` and clients drop an indicator
not renewed by then, so a client that vanishes mid-word leaves nothing behind.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from chatroom.protocol import TYPING_RENEW_S

# Conversations whose last forwarded hint one connection remembers; an older one is
# forgotten (its next hint is forwarded again, which costs a token, nothing more).
REMEMBERED_PER_CONNECTION = 8


def conversation_of(args: dict[str, Any]) -> tuple[str, str]:
    """The conversation a typing request names, as it came ("room" or "to")."""
    if "room" in args:
        return ("room", args["room"])
    return ("to", args.get("to", ""))


class TypingCoalescer:
    """What each connection last forwarded, per conversation: (on, when), for the user
    logged in on it (a connection that logs in as someone else starts afresh)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._sent: dict[object, tuple[int, OrderedDict[tuple[str, str], tuple[bool, float]]]] = {}

    def _of(self, conn: object, user_id: int) -> OrderedDict[tuple[str, str], tuple[bool, float]]:
        entry = self._sent.get(conn)
        if entry is None or entry[0] != user_id:
            entry = self._sent[conn] = (user_id, OrderedDict())
        return entry[1]

    def should_forward(self, conn: object, user_id: int, args: dict[str, Any]) -> bool:
        conversation, on = conversation_of(args), bool(args["on"])
        last = self._of(conn, user_id).get(conversation)
        now = self._clock()
        if last is not None:
            was_on, at = last
            if on and was_on and now - at < TYPING_RENEW_S:
                return False  # a renewal too soon: the others still show it
            if not on and not was_on:
                return False  # already off for them
        elif not on:
            return False  # never shown to them
        return True

    def forwarded(self, conn: object, user_id: int, args: dict[str, Any]) -> None:
        sent = self._of(conn, user_id)
        conversation = conversation_of(args)
        sent.pop(conversation, None)
        sent[conversation] = (bool(args["on"]), self._clock())
        while len(sent) > REMEMBERED_PER_CONNECTION:
            sent.popitem(last=False)

    def forget(self, conn: object) -> None:
        """The connection closed or its user changed."""
        self._sent.pop(conn, None)
