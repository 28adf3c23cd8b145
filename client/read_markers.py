"""Read markers and unread counts (docs/protocol.md, "Read markers").

The server keeps one marker per conversation for the user, shared by all their devices,
and counts what is unread after it: the login snapshot, `sync` and `read` pushes carry
both, and this client sends `read.mark` when the user has seen a conversation (a burst
of reading is one request). Markers only move forward, whatever order the server's
answers arrive in. Against a server that keeps no markers, this device's own memory of
them (client.memory) is used, as before the protocol had them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QElapsedTimer, QObject, QTimer

from .conversations import Conversation, dm_fields, mentions_me
from .memory import DeviceMemory
from .net import ChatClient

# At login, at most this many missed messages per conversation are fetched; older ones
# load when the conversation is scrolled up.
SYNC_BACKLOG = 200
MARK_DELAY_MS = 400  # read.mark waits this long, so a burst of reading is one request
# ... and goes at most this often: in a conversation that never pauses (a busy room on
# screen), marks are sent every few seconds, not after every message, and not never.
MARK_INTERVAL_MS = 3000


class ReadMarkers(QObject):
    def __init__(self, client: ChatClient, memory: DeviceMemory) -> None:
        super().__init__(client)
        self.client = client
        self.memory = memory
        self._marks: dict[tuple[str, str], int] = {}  # read.mark not yet sent
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._send)
        self._clock = QElapsedTimer()  # since the last read.mark went

    def start(self, conv: Conversation, entry: dict[str, Any], known_device: bool) -> None:
        """Where the login sync of a conversation starts: at our read marker, so what
        arrived since is fetched (at most SYNC_BACKLOG of it). Without a server marker
        this device's memory decides (a device new to the account counts all as read)."""
        assert conv.room_id is not None
        last_seq = entry["last_seq"]
        if "read_seq" in entry:
            self.apply(conv, entry, last_seq)
        else:
            marker = self.memory.marker(conv.room_id)
            if marker is None:
                marker = 0 if known_device else last_seq
            conv.read_seq = min(marker, last_seq)
        # One message before the marker too: the newest message is the conversation's
        # preview in the list even when nothing is unread.
        conv.last_seq = max(0, min(conv.read_seq, last_seq - 1), last_seq - SYNC_BACKLOG)

    def apply(self, conv: Conversation, read: dict[str, Any], counted_through: int) -> bool:
        """The server's marker and unread count, which covers every message up to
        `counted_through`; False if it was older than what we know."""
        if read["read_seq"] < conv.read_seq:
            return False
        conv.read_seq = read["read_seq"]
        conv.unread = read["unread"]
        conv.unread_capped = bool(read.get("unread_capped"))
        conv.counted_through = max(conv.counted_through, counted_through)
        # The server's count of the unread that mention us (an older server: ours).
        conv.mentions = read.get("mentions", conv.mentions if conv.unread else 0)
        return True

    def mark_read(
        self, conv: Conversation, through: int | None = None, me: dict[str, Any] | None = None
    ) -> bool:
        """Read up to `through` (default: everything); True if anything changed. Read
        part way (the user scrolled up: the newer messages are not on screen), the
        messages after it that others sent stay unread (`me`: who we are)."""
        before = (conv.read_seq, conv.unread, conv.mentions, conv.unread_capped)
        if through is None or through >= conv.last_seq:
            through = conv.last_seq
            conv.unread = conv.mentions = 0
        elif through > conv.read_seq:
            me = me or {}
            later = [
                m
                for m in conv.messages
                if (m.get("seq") or 0) > through
                and m.get("kind") != "event"
                and m["from"]["username"] != me.get("username")
            ]
            conv.unread = len(later)
            conv.mentions = sum(1 for m in later if mentions_me(m, me))
            # Counted here, message by message, up to the newest we have.
            conv.counted_through = max(conv.counted_through, conv.last_seq)
        else:
            return False
        conv.unread_capped = False
        if through > conv.read_seq:
            conv.read_seq = through
            if conv.room_id is not None:
                self.memory.put_marker(conv.room_id, conv.read_seq)
                self._marks[conv.key] = conv.read_seq
                self._schedule()
        return before != (conv.read_seq, conv.unread, conv.mentions, conv.unread_capped)

    def _schedule(self) -> None:
        """Send what is marked after MARK_DELAY_MS, and not sooner than MARK_INTERVAL_MS
        after the last send. A timer already running is left alone: restarting it on
        every new message would put the send off for as long as messages keep coming."""
        if self._timer.isActive():
            return
        since_last = self._clock.elapsed() if self._clock.isValid() else MARK_INTERVAL_MS
        self._timer.start(max(MARK_DELAY_MS, MARK_INTERVAL_MS - since_last))

    def _send(self) -> None:
        self._clock.start()
        marks, self._marks = self._marks, {}
        for (kind, name), seq in marks.items():
            where = {"room": name} if kind == "room" else dm_fields((kind, name))
            # A refusal (left the room meanwhile, an old server) changes nothing here.
            self.client.request("read.mark", {**where, "seq": seq}, lambda _reply: None)
