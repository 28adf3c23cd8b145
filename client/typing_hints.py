"""Typing indicators, both ways (docs/protocol.md, `typing`).

`TypingSender`: while the user types in a conversation, `typing on` goes out at most
once per TYPING_RENEW_S (the server forwards no more often anyway); `typing off` when
the text is sent or emptied, or after IDLE_OFF_S without a keystroke.

`TypingShown`: who is typing where, from `typing` pushes. A hint lasts its `expires_ms`
unless renewed, and ends at once with an `off` or a message from that person.
Nothing here is ever an error the user needs to see: a refused hint is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from chatroom.protocol import TYPING_RENEW_S

Key = tuple[str, str]
IDLE_OFF_S = 5.0  # no keystroke for this long: the user stopped typing


def typing_text(names: list[str]) -> str:
    """'ann is typing…', 'ann and bob are typing…', 'several people are typing…'."""
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) == 2:
        return f"{names[0]} and {names[1]} are typing…"
    return "several people are typing…"


class TypingSender(QObject):
    def __init__(self, send: Callable[[Key, bool], None], clock: Any = time.monotonic) -> None:
        super().__init__()
        self._send, self._clock = send, clock
        self._on_since: dict[Key, float] = {}  # conversations we told "on", when last
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(self.stop_all)
        self._key: Key | None = None

    def typed(self, key: Key) -> None:
        """A keystroke in `key`'s compose box (text not empty)."""
        if self._key is not None and self._key != key:
            self.stop(self._key)  # switched conversations mid-word
        self._key = key
        last = self._on_since.get(key)
        if last is None or self._clock() - last >= TYPING_RENEW_S:
            self._on_since[key] = self._clock()
            self._send(key, True)
        self._idle.start(int(IDLE_OFF_S * 1000))

    def stop(self, key: Key) -> None:
        """Sent, emptied, or left: tell them only if we had said "on"."""
        if self._on_since.pop(key, None) is not None:
            self._send(key, False)

    def stop_all(self) -> None:
        for key in list(self._on_since):
            self.stop(key)
        self._key = None


class TypingShown(QObject):
    changed = Signal(object)  # the conversation key whose typists changed

    def __init__(self, clock: Any = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._until: dict[Key, dict[str, float]] = {}
        self._expire = QTimer(self)
        self._expire.setInterval(500)
        self._expire.timeout.connect(self._drop_expired)

    def hint(self, key: Key, username: str, on: bool, expires_ms: int) -> None:
        typists = self._until.setdefault(key, {})
        was = username in typists
        if on:
            typists[username] = self._clock() + max(0, expires_ms) / 1000
            self._expire.start()
        else:
            typists.pop(username, None)
        if on != was:
            self.changed.emit(key)

    def stopped(self, key: Key, username: str) -> None:
        """`username` sent a message in `key`: no longer typing there."""
        if self._until.get(key, {}).pop(username, None) is not None:
            self.changed.emit(key)

    def who(self, key: Key | None) -> list[str]:
        return sorted(self._until.get(key, {})) if key is not None else []

    def clear(self) -> None:
        keys = [key for key, typists in self._until.items() if typists]
        self._until.clear()
        for key in keys:
            self.changed.emit(key)

    def _drop_expired(self) -> None:
        now = self._clock()
        for key, typists in self._until.items():
            gone = [name for name, until in typists.items() if until <= now]
            for name in gone:
                del typists[name]
            if gone:
                self.changed.emit(key)
        if not any(self._until.values()):
            self._expire.stop()
