"""Typing indicators, coalesced at the edge: what a connection sends (TypingCoalescer),
and what a room's members receive (RoomHints).

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

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from loguru import logger

from chatroom.framing import loads
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

    def unforwarded(self, conn: object, user_id: int, args: dict[str, Any]) -> None:
        """A hint noted as forwarded did not reach social: the others' view of this
        conversation is unknown, so the next "on" goes and a lone "off" does not."""
        self._of(conn, user_id).pop(conversation_of(args), None)

    def forget(self, conn: object) -> None:
        """The connection closed or its user changed."""
        self._sent.pop(conn, None)


# A room's typing hints that reach this edge within this long of the last push of them
# wait and go out together, the latest per user, as one push.
ROOM_HINTS_WINDOW_S = 1.0


class _Window:
    """One room's hints held until its window ends: each user's latest with its control
    frame, and the fields of the push around them (the room, expires_ms)."""

    __slots__ = ("by_user", "envelope")

    def __init__(self) -> None:
        self.by_user: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.envelope: dict[str, Any] = {}


class RoomHints:
    """Room typing hints merged at the receiving edge, per room.

    The first hint to a room after a quiet window goes out at once (a small room sees
    no delay). Hints that arrive within ROOM_HINTS_WINDOW_S of it are held and go out
    as one push at the window's end (each user's latest hint), which opens the next
    window. So a member of a busy room gets at most one typing push a second, however
    many type: in a room of 1,000 where 50 type, 1,000 pushes a second, not 17,000
    (docs/benchmarks.md, "Typing and read markers"). A hint is shown for
    TYPING_EXPIRES_MS and renewed every TYPING_RENEW_S, so holding it a second changes
    nothing a person sees but when it starts.

    `flush(topic, event, held)` is called with the merged event (the payload's shape:
    `hints` lists them) and each held hint's control frame, for delivery."""

    def __init__(
        self,
        flush: Callable[[bytes, dict[str, Any], list[dict[str, Any]]], None],
        window_s: float = ROOM_HINTS_WINDOW_S,
    ) -> None:
        self._flush = flush
        self.window_s = window_s
        # Rooms pushed within the window; each has one timer, which ends the window.
        self._held: dict[bytes, _Window] = {}

    def hold(self, topic: bytes, payload: bytes, control: dict[str, Any]) -> bool:
        """True: the hint is held for the window's end. False: deliver it now (the
        room was quiet); its window starts."""
        if self.window_s <= 0:
            return False
        window = self._held.get(topic)
        if window is None:
            self._held[topic] = _Window()
            asyncio.get_running_loop().call_later(self.window_s, self._window_ended, topic)
            return False
        try:
            event = loads(payload)
            hints = event.pop("hints")
            for hint in hints:
                user_id = hint["user"]["id"]
                window.by_user.pop(user_id, None)  # the latest hint of each user, last
                window.by_user[user_id] = (hint, control)
            window.envelope = event  # the room's fields and expires_ms: the latest's
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("dropping a malformed typing hint on {}", topic)
        return True

    def _window_ended(self, topic: bytes) -> None:
        window = self._held.pop(topic, None)
        if window is None or not window.by_user:
            return  # a quiet window: the next hint goes out at once
        merged = {**window.envelope, "hints": [hint for hint, _ in window.by_user.values()]}
        self._held[topic] = _Window()  # pushing now opens the next window
        asyncio.get_running_loop().call_later(self.window_s, self._window_ended, topic)
        self._flush(topic, merged, [control for _, control in window.by_user.values()])

    def pending(self) -> int:
        """Rooms in a window (for tests: bounded by the rooms hinted in the last second)."""
        return len(self._held)
