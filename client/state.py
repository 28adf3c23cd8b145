"""What the client knows, fed by the network layer's signals; views read it and listen.

Conversations, friends, rooms, pending friend requests, the activity list and the
outbox live here. Every message has a stable server id, so the same message arriving
from a push, a sync and a history page is stored once. Per-conversation cursors (last
seq seen) drive `sync` after a (re)connect, so nothing sent while we were away is
missed; per-conversation read markers (kept on this device) make what arrived while we
were offline count as unread.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from chatroom.protocol import ErrorCode, is_username_char

from .net import RETRYABLE, ChatClient

Callback = Any  # Callable[[dict], None]

PENDING, SENT, FAILED = "pending", "sent", "failed"
MAX_SEND_ATTEMPTS = 5
MAX_RATE_LIMITED = 100  # a message waits its turn this many times before it fails
# At login, at most this many missed messages per conversation are fetched (and
# counted as unread); older ones load when the conversation is scrolled up.
SYNC_BACKLOG = 200
SYNC_PAGE = 200
MAX_ACTIVITY = 200


def room_key(name: str) -> tuple[str, str]:
    return ("room", name)


def dm_key(username: str) -> tuple[str, str]:
    return ("dm", username)


def now_ms() -> int:
    return int(time.time() * 1000)


def client_key(message: dict[str, Any]) -> tuple:
    return ("client", message["from"]["username"], message["client_id"])


@dataclass
class Conversation:
    key: tuple[str, str]
    title: str
    room_id: int | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    unread: int = 0
    mentions: int = 0  # unread messages that mention us
    has_more: bool = True  # older history may exist on the server
    # The sync cursor: we hold every message up to here (from where we started). It
    # only moves over an unbroken run: a history page of the newest messages must not
    # make sync skip what lies between.
    last_seq: int = 0
    read_seq: int = 0  # the newest seq we have shown the user
    members: list[dict[str, Any]] | None = None  # room.members, once asked for
    seqs: set[int] = field(default_factory=set)
    # Messages by ("id", id) and by sender and client_id: a repeat is found at once.
    _known: dict[tuple, dict[str, Any]] = field(default_factory=dict, repr=False)

    def add(self, message: dict[str, Any]) -> bool:
        """Insert in seq order; False if we already had it (same id or client_id)."""
        existing = self._known.get(("id", message.get("id"))) if message.get("id") else None
        if existing is None and message.get("client_id"):
            existing = self._known.get(client_key(message))
        if existing is not None:
            merged = {**existing, **message}
            self.messages[self.messages.index(existing)] = merged
            if merged.get("seq") and not existing.get("seq"):
                self._sort()  # stored now: from the pending ones at the end to its place
            self._remember(merged)
            self._held(message.get("seq"))
            return False
        seq = message.get("seq")
        before = self.messages[-1] if self.messages else None
        self.messages.append(message)
        # Appending keeps the order for the usual newest message; an older one (a
        # history page) or one stored while pending ones wait at the end sorts.
        if seq and before is not None and (before.get("seq") or seq + 1) > seq:
            self._sort()
        self._remember(message)
        self._held(seq)
        return True

    def _sort(self) -> None:
        self.messages.sort(key=lambda m: (m.get("seq") is None, m.get("seq") or 0))

    def _remember(self, message: dict[str, Any]) -> None:
        if message.get("id"):
            self._known[("id", message["id"])] = message
        if message.get("client_id"):
            self._known[client_key(message)] = message

    def _held(self, seq: int | None) -> None:
        if seq:
            self.seqs.add(seq)
            while self.last_seq + 1 in self.seqs:
                self.last_seq += 1

    @property
    def last_message(self) -> dict[str, Any] | None:
        return self.messages[-1] if self.messages else None


def mentions(text: str, username: str) -> bool:
    """`@username` anywhere in the text, ignoring case, not inside a longer name."""
    if not username:
        return False
    folded, needle = text.casefold(), "@" + username.casefold()
    start = folded.find(needle)
    while start != -1:
        end = start + len(needle)
        if end == len(folded) or not is_username_char(folded[end]):
            return True
        start = folded.find(needle, end)
    return False


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


class ChatState(QObject):
    conversationChanged = Signal(object)  # key
    conversationsChanged = Signal()
    friendsChanged = Signal()
    requestsChanged = Signal()
    avatarChanged = Signal(str, str)  # username, hash
    notice = Signal(str)  # something to tell the user now (e.g. a rejection)
    activityChanged = Signal()
    alert = Signal(str, str, object)  # title, body, conversation key or None
    membersChanged = Signal(object)  # key
    unreadChanged = Signal(int)  # total
    profileChanged = Signal()

    def __init__(self, client: ChatClient, settings: QSettings | None = None) -> None:
        super().__init__(client)
        self.client = client
        self.memory = DeviceMemory(settings)
        self.me: dict[str, Any] = {}
        self.my_avatar: str | None = None
        self.my_status = ""
        self.friends: dict[str, dict[str, Any]] = {}
        self.incoming: list[dict[str, Any]] = []
        self.outgoing: list[dict[str, Any]] = []
        self.conversations: dict[tuple[str, str], Conversation] = {}
        self.active: tuple[str, str] | None = None
        # Whether the user can see the active conversation (window shown and focused);
        # the window keeps it current. Unseen messages count as unread and alert.
        self.watching = False
        self.activity: list[dict[str, Any]] = []  # newest last: {"ts", "text", "mine"}
        self.activity_seen = 0  # entries the user has looked at in the activity list
        self._accepting: set[str] = set()  # requests we accepted, awaiting the push
        self.outbox: list[dict[str, Any]] = []
        self._seen_rejections: set[int] = set()
        self._last_total = 0
        client.loggedIn.connect(self._on_login)
        client.resumed.connect(self._on_resume)
        client.eventReceived.connect(self._on_event)

    # ------------------------------------------------------------------ session

    def _on_login(self, reply: dict[str, Any]) -> None:
        self.me = reply["user"]
        self.my_status = reply.get("status", "")
        self.conversations.clear()
        self.active = None
        self.my_avatar = reply.get("avatar")
        known_device = self.memory.use_account(self.client.where, self.me["id"])
        self.activity, self.activity_seen = self.memory.activity()
        self._apply_snapshot(reply, first=True, known_device=known_device)
        self.profileChanged.emit()
        self.activityChanged.emit()
        self.sync()

    def _on_resume(self, reply: dict[str, Any]) -> None:
        self._apply_snapshot(reply)
        self.sync()
        self.flush_outbox()

    def _apply_snapshot(
        self, reply: dict[str, Any], first: bool = False, known_device: bool = False
    ) -> None:
        self.friends = {f["username"]: f for f in reply.get("friends", [])}
        listed = [(room_key(r["name"]), r) for r in reply.get("rooms", [])]
        listed += [(dm_key(d["with"]["username"]), d) for d in reply.get("direct", [])]
        for key, entry in listed:
            conv = self.conversation(key)
            conv.room_id = entry["id"]
            if first:
                self._start_cursor(conv, entry["last_seq"], known_device)
        for friend in self.friends.values():
            self.conversation(dm_key(friend["username"]))
        self.incoming = reply.get("incoming", [])
        self.outgoing = reply.get("outgoing", [])
        self.conversationsChanged.emit()
        self.friendsChanged.emit()
        self.requestsChanged.emit()

    def _start_cursor(self, conv: Conversation, last_seq: int, known_device: bool) -> None:
        """Where the login sync of a conversation starts: at our read marker, so what
        arrived since is fetched and counted unread (at most SYNC_BACKLOG of it). On a
        device that never saw this account, everything counts as read."""
        assert conv.room_id is not None
        marker = self.memory.marker(conv.room_id)
        if marker is None:
            marker = 0 if known_device else last_seq
        conv.read_seq = min(marker, last_seq)
        # One message before the marker too: the newest message is the conversation's
        # preview in the list even when nothing is unread.
        conv.last_seq = max(0, min(conv.read_seq, last_seq - 1), last_seq - SYNC_BACKLOG)

    def conversation(self, key: tuple[str, str]) -> Conversation:
        conv = self.conversations.get(key)
        if conv is None:
            conv = Conversation(key, key[1])
            self.conversations[key] = conv
        return conv

    def cursors(self) -> dict[str, int]:
        return {str(c.room_id): c.last_seq for c in self.conversations.values() if c.room_id}

    def sync(self) -> None:
        """Fetch everything after our cursors (after a (re)connect or a gap), a page at a
        time: the server keeps each reply within its byte budget and says has_more."""

        def done(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                return
            more = bool(reply.get("has_more"))
            for entry in reply["conversations"]:
                key = (
                    dm_key(entry["with"]["username"])
                    if "with" in entry
                    else room_key(entry["name"])
                )
                conv = self.conversation(key)
                conv.room_id = entry["id"]
                for message in entry["messages"]:
                    self._store(conv, message)
                more = more or entry["has_more"]
            self.conversationsChanged.emit()
            self._unread_total_changed()
            if more:
                self.sync()

        self.client.request("sync", {"cursors": self.cursors(), "limit": SYNC_PAGE}, done)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: dict[str, Any]) -> None:
        handler = getattr(self, "_event_" + event["event"].replace(".", "_"), None)
        if handler is not None:
            handler(event)

    def _event_message(self, message: dict[str, Any]) -> None:
        conv = self.conversation(self.key_of(message))
        conv.room_id = message.get("room_id", conv.room_id)
        gap = conv.last_seq and message.get("seq", 0) > conv.last_seq + 1
        self._store(conv, message, live=True)
        if gap:
            self.sync()  # we missed something between our cursor and this message

    def _event_presence(self, event: dict[str, Any]) -> None:
        friend = self.friends.get(event["user"]["username"])
        if friend is not None:
            friend.update(online=event["online"], status=event.get("status", ""))
            friend["last_seen"] = None if event["online"] else event.get("last_seen", now_ms())
            self.friendsChanged.emit()
        elif event["user"]["username"] == self.me.get("username"):
            self.my_status = event.get("status", "")
            self.profileChanged.emit()

    def _event_friend_request(self, event: dict[str, Any]) -> None:
        who = event["from"]["username"]
        if not any(r["user"]["username"] == who for r in self.incoming):
            self.incoming.append({"user": event["from"], "ts": event.get("ts")})
            self.tell(f"{who} wants to be your friend")
            self.alert.emit("Friend request", f"{who} wants to be your friend", None)
        self.requestsChanged.emit()

    def _event_friend_request_closed(self, event: dict[str, Any]) -> None:
        self._drop_incoming(event["from"]["username"])

    def _event_friend_accepted(self, event: dict[str, Any]) -> None:
        friend = event["friend"]
        self.friends[friend["username"]] = friend
        self.conversation(dm_key(friend["username"]))
        self._drop_incoming(friend["username"])
        self.outgoing = [r for r in self.outgoing if r["user"]["username"] != friend["username"]]
        self.friendsChanged.emit()
        self.conversationsChanged.emit()
        if friend["username"] in self._accepting:
            self._accepting.discard(friend["username"])  # our own click: already recorded
        else:
            self.tell(f"You and {friend['username']} are now friends")

    def _event_friend_rejected(self, event: dict[str, Any]) -> None:
        request_id = event.get("request_id")
        if request_id in self._seen_rejections:
            return
        if request_id is not None:
            self._seen_rejections.add(request_id)
        who = event["by"]["username"]
        self.outgoing = [r for r in self.outgoing if r["user"]["username"] != who]
        self.requestsChanged.emit()
        self.friendsChanged.emit()
        self.tell(f"{who} rejected your friend request")

    def _event_friend_removed(self, event: dict[str, Any]) -> None:
        who = event["user"]["username"]
        if self.friends.pop(who, None) is not None:
            self.tell(f"{who} is no longer your friend")
        # An erased account also closes the requests sent to it.
        self.outgoing = [r for r in self.outgoing if r["user"]["username"] != who]
        self.requestsChanged.emit()
        if self.active == dm_key(who):
            self.active = None
        self.friendsChanged.emit()
        self.conversationsChanged.emit()

    def _event_avatar(self, event: dict[str, Any]) -> None:
        who = event["user"]["username"]
        if who in self.friends:
            self.friends[who]["avatar"] = event["hash"]
            self.friendsChanged.emit()
        if who == self.me.get("username"):
            self.my_avatar = event["hash"]
            self.profileChanged.emit()
        self.avatarChanged.emit(who, event["hash"])

    def _event_room_joined(self, event: dict[str, Any]) -> None:
        conv = self.conversation(room_key(event["room"]["name"]))
        conv.room_id = event["room"]["id"]
        self.conversationsChanged.emit()

    def _event_room_left(self, event: dict[str, Any]) -> None:
        key = room_key(event["room"]["name"])
        self.conversations.pop(key, None)
        if self.active == key:
            self.active = None
        self.conversationsChanged.emit()
        self._unread_total_changed()

    def _event_room_member(self, event: dict[str, Any]) -> None:
        key = room_key(event["room"])
        conv = self.conversations.get(key)
        if conv is None or conv.members is None:
            return
        conv.members = [m for m in conv.members if m["username"] != event["user"]["username"]]
        if event.get("joined"):
            conv.members.append({"online": True, "status": "", **event["user"]})
        self.membersChanged.emit(key)

    def _drop_incoming(self, username: str) -> None:
        self.incoming = [r for r in self.incoming if r["user"]["username"] != username]
        self.requestsChanged.emit()

    def key_of(self, message: dict[str, Any]) -> tuple[str, str]:
        if message.get("direct"):
            me = self.me.get("username")
            peer = message["to"] if message["from"]["username"] == me else message["from"]
            return dm_key(peer["username"])
        return room_key(message["room"])

    def _store(self, conv: Conversation, message: dict[str, Any], live: bool = False) -> None:
        message = {**message, "state": SENT}
        if conv.add(message):
            mine = message["from"]["username"] == self.me.get("username")
            seen = conv.key == self.active and self.watching
            newer = (message.get("seq") or 0) > conv.read_seq
            if seen:
                self.mark_read(conv)
            elif not mine and newer:
                conv.unread += 1
                mentioned = mentions(message["text"], self.me.get("username", ""))
                conv.mentions += mentioned
                if live:
                    self._alert_for(conv, message, mentioned)
                self._unread_total_changed()
        self.conversationChanged.emit(conv.key)

    def _alert_for(self, conv: Conversation, message: dict[str, Any], mentioned: bool) -> None:
        sender = message["from"]["username"]
        text = message["text"].replace("\n", " ")[:200]
        if conv.key[0] == "dm":
            self.alert.emit(sender, text, conv.key)
        elif mentioned:
            self.alert.emit(f"{sender} in #{conv.title}", text, conv.key)

    # ------------------------------------------------------------------ unread

    @property
    def unread_total(self) -> int:
        return sum(c.unread for c in self.conversations.values())

    def _unread_total_changed(self) -> None:
        total = self.unread_total
        if total != self._last_total:
            self._last_total = total
            self.unreadChanged.emit(total)

    def mark_read(self, conv: Conversation) -> None:
        """Everything in the conversation has been seen."""
        conv.unread = conv.mentions = 0
        if conv.last_seq > conv.read_seq:
            conv.read_seq = conv.last_seq
            if conv.room_id is not None:
                self.memory.put_marker(conv.room_id, conv.read_seq)
        self._unread_total_changed()

    def set_watching(self, watching: bool) -> None:
        self.watching = watching
        if watching and self.active is not None:
            conv = self.conversation(self.active)
            if conv.unread or conv.last_seq > conv.read_seq:
                self.mark_read(conv)
                self.conversationChanged.emit(conv.key)

    # ------------------------------------------------------------------ activity

    def record(self, text: str, mine: bool = False) -> None:
        """Keep a line in the activity list (friend requests and their answers); `mine`
        for what the user did, which is kept but never counts as new."""
        self.activity.append({"ts": now_ms(), "text": text, "mine": mine})
        dropped = max(0, len(self.activity) - MAX_ACTIVITY)
        del self.activity[:dropped]
        self.activity_seen = max(0, self.activity_seen - dropped)
        self.memory.put_activity(self.activity, self.activity_seen)
        self.activityChanged.emit()

    def tell(self, text: str) -> None:
        """Show it now and keep it in the activity list."""
        self.record(text)
        self.notice.emit(text)

    @property
    def new_activity(self) -> int:
        return sum(1 for e in self.activity[self.activity_seen :] if not e.get("mine"))

    def saw_activity(self) -> None:
        self.activity_seen = len(self.activity)
        self.memory.put_activity(self.activity, self.activity_seen)
        self.activityChanged.emit()

    # ------------------------------------------------------------------ actions

    def open_conversation(self, key: tuple[str, str]) -> None:
        self.active = key
        conv = self.conversation(key)
        self.mark_read(conv)  # the user just picked it: what is there is seen
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
                if reply["error"]["code"] in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
                    conv.has_more = False  # no messages with this friend yet
                return
            conv.has_more = reply["has_more"]
            for message in reply["messages"]:
                conv.add({**message, "state": SENT})
            self.conversationChanged.emit(key)

        self.client.request(op, fields, done)

    def request_friend(self, username: str, done: Callback) -> None:
        def asked(reply: dict[str, Any]) -> None:
            if reply.get("ok") and reply.get("status") == "pending":
                who = reply["to"]["username"]
                if not any(r["user"]["username"] == who for r in self.outgoing):
                    self.outgoing.append({"user": reply["to"], "ts": now_ms()})
                self.friendsChanged.emit()
            done(reply)

        self.client.request("friend.request", {"username": username}, asked)

    def answer_request(self, username: str, accept: bool, done: Callback) -> None:
        def answered(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self._drop_incoming(username)
                verb = "accepted" if accept else "rejected"
                self.record(f"You {verb} {username}'s friend request", mine=True)
            else:
                self._accepting.discard(username)
            done(reply)

        if accept:
            self._accepting.add(username)
        op = "friend.accept" if accept else "friend.reject"
        self.client.request(op, {"username": username}, answered)

    def remove_friend(self, username: str, done: Callback) -> None:
        def removed(reply: dict[str, Any]) -> None:
            if reply.get("ok") and self.friends.pop(username, None) is not None:
                self.record(f"You removed {username} from your friends", mine=True)
                if self.active == dm_key(username):
                    self.active = None
                self.friendsChanged.emit()
                self.conversationsChanged.emit()
            done(reply)

        self.client.request("friend.remove", {"username": username}, removed)

    def list_rooms(self, query: str, done: Callback) -> None:
        """Rooms whose name contains `query` (all of them for ""), as many as one reply
        carries: the reply says has_more when there are others."""
        self.client.request("room.list", {"query": query} if query else {}, done)

    def join_room(self, name: str, done: Callback) -> None:
        self.client.request("room.join", {"room": name}, self._entered(done))

    def create_room(self, name: str, done: Callback) -> None:
        self.client.request("room.create", {"room": name}, self._entered(done))

    def _entered(self, done: Callback) -> Callback:
        def entered(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self._event_room_joined({"room": reply["room"]})
            done(reply)

        return entered

    def leave_room(self, name: str, done: Callback) -> None:
        def left(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self._event_room_left({"room": {"name": name}})
            done(reply)

        self.client.request("room.leave", {"room": name}, left)

    def load_members(self, key: tuple[str, str]) -> None:
        conv = self.conversation(key)

        def done(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                conv.members = reply["members"]
                self.membersChanged.emit(key)

        self.client.request("room.members", {"room": key[1]}, done)

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
                if conv.key == self.active and self.watching:
                    self.mark_read(conv)
            else:
                error = reply["error"]
                if error["code"] == ErrorCode.RATE_LIMITED and local["attempts"] < MAX_RATE_LIMITED:
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
