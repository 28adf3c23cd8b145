"""What this device remembers per server and account (QSettings)."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QSettings


class DeviceMemory:
    """What this device remembers per server and account, in QSettings, so that it
    survives a restart of the app: the newest seq shown per conversation (unread counts
    include what arrived while the app was closed) and the activity list. (Server-side
    read markers shared by all devices are a later protocol addition.)"""

    def __init__(self, settings: QSettings | None) -> None:
        self.settings = settings
        self.prefix = ""

    def use_account(self, server: str, user_id: int) -> bool:
        """Select the account; True if it was used on this device before."""
        self.prefix = f"account/{server.replace('/', '_')}/{user_id}"
        if self.settings is None:
            return False
        known = self.settings.value(f"{self.prefix}/known", "false") in (True, "true")
        self.settings.setValue(f"{self.prefix}/known", "true")
        return known

    def _get(self, name: str) -> Any:
        if self.settings is None or not self.prefix:
            return None
        return self.settings.value(f"{self.prefix}/{name}")

    def _put(self, name: str, value: Any) -> None:
        if self.settings is not None and self.prefix:
            self.settings.setValue(f"{self.prefix}/{name}", value)

    def marker(self, room_id: int) -> int | None:
        value = self._get(f"read/{room_id}")
        return int(value) if value is not None else None

    def put_marker(self, room_id: int, seq: int) -> None:
        self._put(f"read/{room_id}", seq)

    def activity(self) -> tuple[list[dict[str, Any]], int]:
        """The kept activity list and how many of its entries the user has seen."""
        try:
            entries = json.loads(self._get("activity") or "[]")
            seen = int(self._get("activity_seen") or 0)
        except (TypeError, ValueError):
            return [], 0
        return [e for e in entries if isinstance(e, dict)], seen

    def put_activity(self, entries: list[dict[str, Any]], seen: int) -> None:
        self._put("activity", json.dumps(entries, ensure_ascii=False))
        self._put("activity_seen", seen)
