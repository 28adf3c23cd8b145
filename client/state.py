"""What the client knows, fed by the network layer's signals; views read it and listen.

Conversations, friends, rooms, pending friend requests and the outbox live here. Every
message has a stable server id, so the same message arriving from a push, a sync and a
history page is stored once. Per-conversation cursors (last seq seen) drive `sync`
after a reconnect, so nothing sent while we were away is missed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from .net import RETRYABLE, ChatClient

PENDING, SENT, FAILED = "pending", "sent", "failed"
MAX_SEND_ATTEMPTS = 5
MAX_RATE_LIMITED = 100  # a message waits its turn this many times before it fails


def room_key(name: str) -> tuple[str, str]:
    return ("room", name)


def dm_key(username: str) -> tuple[str, str]:
    return ("dm", username)


@dataclass
class Conversation:
    key: tuple[str, str]
    title: str
    room_id: int | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    unread: int = 0
    has_more: bool = True  # older history may exist on the server
    last_seq: int = 0  # cursor: the newest seq we hold

    def add(self, message: dict[str, Any]) -> bool:
        """Insert in seq order; False if we already had it (same id or client_id)."""
        for index, existing in enumerate(self.messages):
            same_id = message.get("id") is not None and existing.get("id") == message.get("id")
            same_local = message.get("client_id") and existing.get("client_id") == message.get(
                "client_id"
            )
            if same_id or same_local:
                self.messages[index] = {**existing, **message}
                return False
        self.messages.append(message)
        self.messages.sort(key=lambda m: (m.get("seq") is None, m.get("seq") or 0))
        if message.get("seq"):
            self.last_seq = max(self.last_seq, message["seq"])
        return True


class ChatState(QObject):
    conversationChanged = Signal(object)  # key
    conversationsChanged = Signal()
    friendsChanged = Signal()
    requestsChanged = Signal()
    avatarChanged = Signal(str, str)  # username, hash
    notice = Signal(str)  # something to tell the user (e.g. a rejection)
    profileChanged = Signal()

    def __init__(self, client: ChatClient) -> None:
        super().__init__(client)
        self.client = client
        self.me: dict[str, Any] = {}
        self.my_avatar: str | None = None
        self.my_status = ""
        self.friends: dict[str, dict[str, Any]] = {}
        self.incoming: list[dict[str, Any]] = []
        self.outgoing: list[dict[str, Any]] = []
        self.conversations: dict[tuple[str, str], Conversation] = {}
        self.active: tuple[str, str] | None = None
        self.outbox: list[dict[str, Any]] = []
        self._seen_rejections: set[int] = set()
        client.loggedIn.connect(self._on_login)
        client.resumed.connect(self._on_resume)
        client.eventReceived.connect(self._on_event)

    # ------------------------------------------------------------------ session

    def _on_login(self, reply: dict[str, Any]) -> None:
        self.me = reply["user"]
        self.my_status = reply.get("status", "")
        self.conversations.clear()
        self._apply_snapshot(reply)
        self.profileChanged.emit()

    def _on_resume(self, reply: dict[str, Any]) -> None:
        self._apply_snapshot(reply)
        self.sync()
        self.flush_outbox()

    def _apply_snapshot(self, reply: dict[str, Any]) -> None:
        for room in reply.get("rooms", []):
            conv = self.conversation(room_key(room["name"]))
            conv.room_id = room["id"]
            if not conv.messages:
                conv.last_seq = room["last_seq"]
        self.friends = {f["username"]: f for f in reply.get("friends", [])}
        for friend in self.friends.values():
            self.conversation(dm_key(friend["username"]))
        self.incoming = reply.get("incoming", [])
        self.outgoing = reply.get("outgoing", [])
        self.conversationsChanged.emit()
        self.friendsChanged.emit()
        self.requestsChanged.emit()

    def conversation(self, key: tuple[str, str]) -> Conversation:
        conv = self.conversations.get(key)
        if conv is None:
            conv = Conversation(key, key[1])
            self.conversations[key] = conv
        return conv

    def cursors(self) -> dict[str, int]:
        return {str(c.room_id): c.last_seq for c in self.conversations.values() if c.room_id}

    def sync(self) -> None:
        """Fetch everything after our cursors (after a reconnect or a gap)."""

        def done(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                return
            more = False
            for entry in reply["conversations"]:
                key = (
                    dm_key(entry["with"]["username"])
                    if "with" in entry
                    else room_key(entry["name"])
                )
                conv = self.conversation(key)
                conv.room_id = entry["id"]
                for message in entry["messages"]:
                    self._store(conv, message, from_sync=True)
                more = more or entry["has_more"]
            self.conversationsChanged.emit()
            if more:
                self.sync()

        self.client.request("sync", {"cursors": self.cursors(), "limit": 500}, done)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if name == "message":
            self._on_message(event)
        elif name == "presence":
            friend = self.friends.get(event["user"]["username"])
            if friend is not None:
                friend.update(online=event["online"], status=event.get("status", ""))
                self.friendsChanged.emit()
            elif event["user"]["username"] == self.me.get("username"):
                self.my_status = event.get("status", "")
                self.profileChanged.emit()
        elif name == "friend.request":
            if not any(r["user"]["username"] == event["from"]["username"] for r in self.incoming):
                self.incoming.append({"user": event["from"], "ts": event.get("ts")})
            self.requestsChanged.emit()
        elif name == "friend.request.closed":
            self._drop_incoming(event["from"]["username"])
        elif name == "friend.accepted":
            friend = event["friend"]
            self.friends[friend["username"]] = friend
            self.conversation(dm_key(friend["username"]))
            self._drop_incoming(friend["username"])
            self.outgoing = [
                r for r in self.outgoing if r["user"]["username"] != friend["username"]
            ]
            self.friendsChanged.emit()
            self.conversationsChanged.emit()
            self.notice.emit(f"You and {friend['username']} are now friends")
        elif name == "friend.rejected":
            if event.get("request_id") in self._seen_rejections:
                return
            self._seen_rejections.add(event.get("request_id"))
            who = event["by"]["username"]
            self.outgoing = [r for r in self.outgoing if r["user"]["username"] != who]
            self.requestsChanged.emit()
            self.notice.emit(f"{who} rejected your friend request")
        elif name == "friend.removed":
            self.friends.pop(event["user"]["username"], None)
            self.friendsChanged.emit()
        elif name == "avatar":
            who = event["user"]["username"]
            if who in self.friends:
                self.friends[who]["avatar"] = event["hash"]
                self.friendsChanged.emit()
            if who == self.me.get("username"):
                self.my_avatar = event["hash"]
                self.profileChanged.emit()
            self.avatarChanged.emit(who, event["hash"])
        elif name in ("room.joined",):
            conv = self.conversation(room_key(event["room"]["name"]))
            conv.room_id = event["room"]["id"]
            self.conversationsChanged.emit()
        elif name == "room.left":
            self.conversations.pop(room_key(event["room"]["name"]), None)
            self.conversationsChanged.emit()

    def _drop_incoming(self, username: str) -> None:
        self.incoming = [r for r in self.incoming if r["user"]["username"] != username]
        self.requestsChanged.emit()

    def key_of(self, message: dict[str, Any]) -> tuple[str, str]:
        if message.get("direct"):
            me = self.me.get("username")
            peer = message["to"] if message["from"]["username"] == me else message["from"]
            return dm_key(peer["username"])
        return room_key(message["room"])

    def _on_message(self, message: dict[str, Any]) -> None:
        conv = self.conversation(self.key_of(message))
        conv.room_id = message.get("room_id", conv.room_id)
        gap = conv.last_seq and message.get("seq", 0) > conv.last_seq + 1
        self._store(conv, message)
        if gap:
            self.sync()  # we missed something between our cursor and this message

    def _store(self, conv: Conversation, message: dict[str, Any], from_sync: bool = False) -> None:
        message = {**message, "state": SENT}
        if conv.add(message):
            mine = message["from"]["username"] == self.me.get("username")
            if conv.key != self.active and not mine:
                conv.unread += 1
        self.conversationChanged.emit(conv.key)

    # ------------------------------------------------------------------ actions

    def open_conversation(self, key: tuple[str, str]) -> None:
        self.active = key
        conv = self.conversation(key)
        conv.unread = 0
        if len(conv.messages) < 30 and conv.has_more:
            self.load_older(key)
        self.conversationChanged.emit(key)

    def load_older(self, key: tuple[str, str]) -> None:
        conv = self.conversation(key)
        if not conv.has_more:
            return
        seqs = [m["seq"] for m in conv.messages if m.get("seq")]
        fields: dict[str, Any] = {"limit": 50}
        if seqs:
            fields["before"] = min(seqs)
        if key[0] == "room":
            op, fields["room"] = "room.history", key[1]
        else:
            op, fields["with"] = "dm.history", key[1]

        def done(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                if reply["error"]["code"] == "not_found":
                    conv.has_more = False  # no messages with this friend yet
                return
            conv.has_more = reply["has_more"]
            for message in reply["messages"]:
                conv.add({**message, "state": SENT})
            self.conversationChanged.emit(key)

        self.client.request(op, fields, done)

    def send(self, key: tuple[str, str], text: str) -> dict[str, Any]:
        """Show the message at once as pending; it is sent now or after a reconnect and
        is marked failed only when the server refuses it."""
        local = {
            "id": None,
            "client_id": uuid.uuid4().hex,
            "from": dict(self.me),
            "text": text,
            "ts": None,
            "state": PENDING,
            "attempts": 0,
            "key": key,
        }
        self.conversation(key).add(local)
        self.outbox.append(local)
        self.conversationChanged.emit(key)
        self._send_one(local)
        return local

    def flush_outbox(self) -> None:
        for local in list(self.outbox):
            self._send_one(local)

    def _send_one(self, local: dict[str, Any]) -> None:
        if self.client.state != "online":
            return  # stays pending; flushed after the reconnect
        key = local["key"]
        local["attempts"] += 1
        fields = {"text": local["text"], "client_id": local["client_id"]}
        if key[0] == "room":
            op, fields["room"] = "room.send", key[1]
        else:
            op, fields["to"] = "dm.send", key[1]

        def done(reply: dict[str, Any]) -> None:
            conv = self.conversation(key)
            if reply.get("ok"):
                self._finish(local)
                conv.add({**reply["message"], "state": SENT})
            else:
                error = reply["error"]
                if error["code"] == "rate_limited" and local["attempts"] < MAX_RATE_LIMITED:
                    # Not a failure, just "later": it does not use up the normal retries.
                    QTimer.singleShot(error.get("retry_after_ms", 1000), lambda: self._retry(local))
                    return
                if error["code"] in RETRYABLE and local["attempts"] < MAX_SEND_ATTEMPTS:
                    # Kept pending and sent again with the same client_id (the server
                    # keeps one copy) after a short backoff, or after the reconnect.
                    QTimer.singleShot(1000 * local["attempts"], lambda: self._retry(local))
                    return
                self._finish(local)
                conv.add({**local, "state": FAILED, "error": error["message"]})
            self.conversationChanged.emit(key)

        self.client.request(op, fields, done)

    def _retry(self, local: dict[str, Any]) -> None:
        if local in self.outbox:
            self._send_one(local)

    def _finish(self, local: dict[str, Any]) -> None:
        if local in self.outbox:
            self.outbox.remove(local)
