"""What the client knows, fed by the network layer's replies and pushes; views read it
and listen to its signals. What the user asks the server for goes through
`client.actions.ChatActions`.

Conversations, friends, rooms, pending friend requests and the activity list live here.
Every message has a stable server id, so the same message arriving from a push, a sync
and a history page is stored once. Per-conversation cursors (last seq seen) drive `sync`
after a (re)connect, so nothing sent while we were away is missed. Read markers and
unread counts are the server's (`read.mark`, shared by all the user's devices; this
device's own memory of them is only used with a server that does not keep them).
Pushes are handled through one table (`_pushes`, push name -> method); a push not in it
is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from chatroom.protocol import DELETED_USER, Event

from .blocking import BlockList
from .conversations import (
    SENT,
    Conversation,
    apply_room_event,
    as_line,
    dm_key,
    left_notice,
    mentions_me,
    now_ms,
    peer_key,
    room_key,
    room_label,
    title_of,
)
from .memory import DeviceMemory
from .net import ChatClient
from .read_markers import ReadMarkers
from .read_pushes import ReadPushes
from .typing_hints import TypingShown

SYNC_PAGE = 200
MAX_ACTIVITY = 200

Push = Callable[[dict[str, Any]], None]


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
    resumed = Signal()  # the session is back and syncing
    roomChanged = Signal(object)  # key: our role, the topic or announcement mode changed
    settingsChanged = Signal()  # read_receipts changed (here or on another device)
    # The open room is gone (we were kicked or banned, it was deleted): the window shows
    # another, rather than a pane nobody can write in.
    conversationClosed = Signal(object)  # key
    # old key, new key: a friend deleted their account, their chat now goes by its id
    conversationRenamed = Signal(object, object)

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
        # Whether the user can see the active conversation's newest messages (window
        # in front, its list at the bottom); the window keeps it current. Unseen
        # messages count as unread and alert.
        self.watching = False
        self.activity: list[dict[str, Any]] = []  # newest last: {"ts", "text", "mine"}
        self.activity_seen = 0  # entries the user has looked at in the activity list
        self.accepting: set[str] = set()  # requests we accepted, awaiting the push
        self._seen_rejections: set[int] = set()
        self._last_total = 0
        self.typing = TypingShown()
        self.reads = ReadMarkers(client, self.memory)
        self.blocks = BlockList(client, self)  # whom the user blocks (client/blocking.py)
        self.read_receipts = False  # whether we share our read markers in direct chats
        self.read_pushes = ReadPushes(self)
        client.loggedIn.connect(self._on_login)
        client.resumed.connect(self._on_resume)
        # The pushes this client acts on, by name (chatroom.protocol.Event); `closing`
        # is the network layer's (client.net).
        self._pushes: dict[str, Push] = {
            Event.MESSAGE: self._push_message,
            Event.MESSAGE_EDITED: self._push_change,
            Event.MESSAGE_DELETED: self._push_change,
            Event.PRESENCE: self._push_presence,
            Event.FRIEND_REQUEST: self._push_friend_request,
            Event.FRIEND_REQUEST_CLOSED: self._push_friend_request_closed,
            Event.FRIEND_ACCEPTED: self._push_friend_accepted,
            Event.FRIEND_REJECTED: self._push_friend_rejected,
            Event.FRIEND_REMOVED: self._push_friend_removed,
            Event.AVATAR: self._push_avatar,
            Event.ROOM_JOINED: self.joined_room,
            Event.ROOM_LEFT: self.left_room,
            Event.ROOM_MEMBER: self._push_room_member,
            Event.ROOM_EVENT: self._push_room_event,
            Event.TYPING: self._push_typing,
            **self.read_pushes.pushes(),
        }
        client.eventReceived.connect(self._on_event)

    # ------------------------------------------------------------------ session

    def _on_login(self, reply: dict[str, Any]) -> None:
        self.me = reply["user"]
        self.my_status = reply.get("status", "")
        self.conversations.clear()
        self.typing.clear()
        self.active = None
        self.my_avatar = reply.get("avatar")
        known_device = self.memory.use_account(self.client.where, self.me["id"])
        self.activity, self.activity_seen = self.memory.activity()
        self._apply_snapshot(reply, first=True, known_device=known_device)
        self.profileChanged.emit()
        self.activityChanged.emit()
        self.sync()

    def _on_resume(self, reply: dict[str, Any]) -> None:
        self.typing.clear()  # hints sent while we were away have lapsed or will renew
        self._apply_snapshot(reply)
        self.sync()
        self.resumed.emit()  # then the outbox goes out (ChatActions)

    def _apply_snapshot(
        self, reply: dict[str, Any], first: bool = False, known_device: bool = False
    ) -> None:
        self.friends = {f["username"]: f for f in reply.get("friends", [])}
        self.read_receipts = bool(reply.get("read_receipts"))
        listed = [(room_key(r["name"]), r) for r in reply.get("rooms", [])]
        listed += [(peer_key(d["with"]), d) for d in reply.get("direct", [])]
        for key, entry in listed:
            conv = self.conversation(key)
            conv.room_id = entry["id"]
            self._room_settings(conv, entry)
            if first:
                self.reads.start(conv, entry, known_device)
            elif "read_seq" in entry:
                self.apply_read(conv, entry, entry["last_seq"])
            self.read_pushes.settings_of(conv, entry)
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
            conv = Conversation(key, title_of(key))
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
                key = peer_key(entry["with"]) if "with" in entry else room_key(entry["name"])
                conv = self.conversation(key)
                conv.room_id = entry["id"]
                self._room_settings(conv, entry)
                for message in entry["messages"]:
                    self._store(conv, message)
                for change in entry.get("events", []):
                    if change.get("kind") == "event":
                        self._store(conv, as_line(change))
                    else:
                        conv.apply_change(change)
                more = more or entry["has_more"]
            if not more:  # the counts cover every page fetched
                for read in reply.get("read", []):
                    known = self.by_room_id(read["id"])
                    if known is not None:
                        self.apply_read(known, read, known.last_seq)
                        self.read_pushes.settings_of(known, read)
                self.read_receipts = bool(reply.get("read_receipts", self.read_receipts))
            self.conversationsChanged.emit()
            self._unread_total_changed()
            if more:
                self.sync()

        self.client.request("sync", {"cursors": self.cursors(), "limit": SYNC_PAGE}, done)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: dict[str, Any]) -> None:
        handler = self._pushes.get(event["event"])
        if handler is not None:
            handler(event)

    def _push_message(self, message: dict[str, Any]) -> None:
        conv = self.conversation(self.key_of(message))
        conv.room_id = message.get("room_id", conv.room_id)
        gap = conv.last_seq and message.get("seq", 0) > conv.last_seq + 1
        self._store(conv, message, live=True)
        if gap:
            self.sync()  # we missed something between our cursor and this message

    def _push_change(self, change: dict[str, Any]) -> None:
        """A message edited or deleted (by its author, maybe on another of our devices)."""
        conv = self.conversation(self.key_of(change))
        gap = conv.last_seq and change.get("seq", 0) > conv.last_seq + 1
        conv.apply_change(change)
        self.conversationChanged.emit(conv.key)
        if gap:
            self.sync()

    def _push_typing(self, event: dict[str, Any]) -> None:
        expires_ms = int(event.get("expires_ms", 0))
        for hint in event["hints"]:  # a busy room's come merged, up to one push a second
            who = hint["user"]["username"]
            if who == self.me.get("username"):
                continue  # our own, from another of our devices
            key = dm_key(who) if event.get("direct") else room_key(event["room"])
            self.typing.hint(key, who, bool(hint["on"]), expires_ms)

    def _push_presence(self, event: dict[str, Any]) -> None:
        friend = self.friends.get(event["user"]["username"])
        if friend is not None:
            # Pushes made by different replicas can cross, and one may come again after
            # the server's link to a bus came back: the highest version is the news.
            version = event.get("presence_version")
            if version is not None:
                if version < friend.get("presence_version", 0):
                    return
                friend["presence_version"] = version
            friend.update(online=event["online"], status=event.get("status", ""))
            friend["last_seen"] = None if event["online"] else event.get("last_seen", now_ms())
            self.friendsChanged.emit()
        elif event["user"]["username"] == self.me.get("username"):
            self.my_status = event.get("status", "")
            self.profileChanged.emit()

    def _push_friend_request(self, event: dict[str, Any]) -> None:
        who = event["from"]["username"]
        # The server never keeps requests both ways (one to someone who asked you makes
        # you friends): an outgoing one still listed was dropped, e.g. while they had
        # blocked us (not revealed), so it is gone here too.
        self.outgoing = [r for r in self.outgoing if r["user"]["username"] != who]
        if not any(r["user"]["username"] == who for r in self.incoming):
            self.incoming.append({"user": event["from"], "ts": event.get("ts")})
            self.tell(f"{who} wants to be your friend")
            self.alert.emit("Friend request", f"{who} wants to be your friend", None)
        self.requestsChanged.emit()

    def _push_friend_request_closed(self, event: dict[str, Any]) -> None:
        self.drop_incoming(event["from"]["username"])

    def _push_friend_accepted(self, event: dict[str, Any]) -> None:
        friend = event["friend"]
        known = self.friends.get(friend["username"])
        # Already a friend in a newer state: the push came again after a login (the
        # edge sends what came while it was under way, which the snapshot may show).
        if known is None or known.get("presence_version", 0) <= friend.get("presence_version", 0):
            self.friends[friend["username"]] = friend
        self.conversation(dm_key(friend["username"]))
        self.drop_incoming(friend["username"])
        self.outgoing = [r for r in self.outgoing if r["user"]["username"] != friend["username"]]
        self.friendsChanged.emit()
        self.conversationsChanged.emit()
        if friend["username"] in self.accepting:
            self.accepting.discard(friend["username"])  # our own click: already recorded
        else:
            self.tell(f"You and {friend['username']} are now friends")

    def _push_friend_rejected(self, event: dict[str, Any]) -> None:
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

    def _push_friend_removed(self, event: dict[str, Any]) -> None:
        who = event["user"]["username"]
        deleted = bool(event.get("deleted"))  # they deleted their account
        if self.friends.pop(who, None) is not None:
            self.tell(
                f"{who} deleted their account" if deleted else f"{who} is no longer your friend"
            )
        if deleted:
            self._account_deleted(event["user"])
        # An erased account also closes the requests sent to it.
        self.outgoing = [r for r in self.outgoing if r["user"]["username"] != who]
        self.requestsChanged.emit()
        # The conversation stays, to read: the pane says why it cannot be written in.
        self.friendsChanged.emit()
        self.conversationsChanged.emit()

    def shown(self, key: tuple[str, str]) -> list[dict[str, Any]]:
        """A conversation's messages as the user sees them: in a room, none from someone
        they block. (The server stops sending them once blocked; those that came before
        stay here, hidden, and show again if the block ends.)"""
        messages = self.conversation(key).messages
        if key[0] != "room" or not self.blocks.users:
            return messages
        return [
            m
            for m in messages
            if m.get("kind") == "event" or not self.blocks.is_blocked(m["from"]["username"])
        ]

    def refill_rooms(self) -> None:
        """Every room's newest page again: after an unblock, the server sends the messages
        it had kept from us while the block lasted."""
        for conv in list(self.conversations.values()):
            if conv.key[0] != "room":
                continue

            def done(reply: dict[str, Any], conv: Conversation = conv) -> None:
                if reply.get("ok"):
                    self.add_page(conv, reply["messages"])

            self.client.request("room.history", {"room": conv.key[1], "limit": 50}, done)

    def add_page(self, conv: Conversation, messages: list[dict[str, Any]]) -> None:
        """A page of a conversation's history (a room's moderation events among its
        messages), placed by seq among what the conversation holds."""
        for message in messages:
            conv.add({**as_line(message), "state": SENT})
        self.conversationChanged.emit(conv.key)

    def _account_deleted(self, user: dict[str, Any]) -> None:
        """What the app shows of someone who deleted their account becomes what it shows
        after a restart: their messages from "deleted user", and their chat keyed by
        their id (its name finds no one now: conversations.peer_key), still open if it
        was."""
        gone = {"id": user["id"], "username": DELETED_USER}
        for conv in self.conversations.values():
            theirs = [
                (row, message)
                for row, message in enumerate(conv.messages)
                if message.get("from", {}).get("id") == user["id"]
            ]
            for row, message in theirs:  # new versions: the view repaints the rows it finds new
                conv.replace(message, {**message, "from": gone}, row)
            if theirs:
                self.conversationChanged.emit(conv.key)
        old, new = dm_key(user["username"]), peer_key(gone)
        if old not in self.conversations:
            return
        conv = self.conversations.pop(old)
        conv.key, conv.title = new, title_of(new)
        self.conversations[new] = conv
        if self.active == old:
            self.active = new
        self.conversationRenamed.emit(old, new)

    def _push_avatar(self, event: dict[str, Any]) -> None:
        who = event["user"]["username"]
        if who in self.friends:
            self.friends[who]["avatar"] = event["hash"]
            self.friendsChanged.emit()
        if who == self.me.get("username"):
            self.my_avatar = event["hash"]
            self.profileChanged.emit()
        self.avatarChanged.emit(who, event["hash"])

    def _room_settings(self, conv: Conversation, room: dict[str, Any]) -> None:
        """A room's settings as a snapshot, sync entry, reply or push carries them."""
        for name in ("role", "topic", "announce", "visibility"):
            if name in room:
                setattr(conv, name, room[name])
        self.roomChanged.emit(conv.key)

    def joined_room(self, event: dict[str, Any]) -> None:
        """A room.joined push, or our own join's reply: {"room": {"name", "id"}}."""
        conv = self.conversation(room_key(event["room"]["name"]))
        conv.room_id = event["room"]["id"]
        self._room_settings(conv, event["room"])
        if event.get("reason") == "invited":
            self.tell(f"You were added to {room_label(conv)}")
        self.conversationsChanged.emit()

    def left_room(self, event: dict[str, Any]) -> None:
        """A room.left push, or our own leave's reply: {"room": {"name"}}; a moderator's
        doing says why (`reason`)."""
        key = room_key(event["room"]["name"])
        conv = self.conversations.pop(key, None)
        if event.get("reason"):
            label = room_label(conv) if conv else f"#{event['room']['name']}"
            self.tell(left_notice(event["reason"], label))
        self._close_if_open(key)
        self.conversationsChanged.emit()
        self._unread_total_changed()

    def _close_if_open(self, key: tuple[str, str]) -> None:
        if self.active == key:
            self.active = None
            self.conversationClosed.emit(key)

    def _push_room_member(self, event: dict[str, Any]) -> None:
        key = room_key(event["room"])
        conv = self.conversations.get(key)
        if conv is None or conv.members is None:
            return
        conv.members = [m for m in conv.members if m["username"] != event["user"]["username"]]
        if event.get("joined"):
            conv.members.append({"online": True, "status": "", **event["user"]})
        self.membersChanged.emit(key)

    def _push_room_event(self, event: dict[str, Any]) -> None:
        """A moderation action in one of our rooms: a line in the conversation, and the
        member list, our role, the topic or the announcement mode as it says."""
        conv = self.conversations.get(room_key(event["room"]))
        if conv is None:
            return
        gap = conv.last_seq and event.get("seq", 0) > conv.last_seq + 1
        self._store(conv, as_line(event))
        if apply_room_event(conv, event, self.me.get("username", "")):
            self.membersChanged.emit(conv.key)
        self.roomChanged.emit(conv.key)
        if gap:
            self.sync()

    def drop_incoming(self, username: str) -> None:
        self.incoming = [r for r in self.incoming if r["user"]["username"] != username]
        self.requestsChanged.emit()

    def key_of(self, message: dict[str, Any]) -> tuple[str, str]:
        if message.get("direct"):
            me = self.me.get("username")
            peer = message["to"] if message["from"]["username"] == me else message["from"]
            return peer_key(peer)
        return room_key(message["room"])

    def _store(self, conv: Conversation, message: dict[str, Any], live: bool = False) -> None:
        message = {**message, "state": SENT}
        if conv.add(message):
            if live:
                self.typing.stopped(conv.key, message["from"]["username"])
            mine = message["from"]["username"] == self.me.get("username")
            seen = conv.key == self.active and self.watching
            newer = (message.get("seq") or 0) > conv.read_seq
            if seen:
                self.mark_read(conv)
            elif not mine and newer and message.get("kind") != "event":
                if (message.get("seq") or 0) > conv.counted_through:
                    conv.unread += 1
                mentioned = mentions_me(message, self.me)
                conv.mentions += mentioned
                if live:
                    self._alert_for(conv, message, mentioned)
                self._unread_total_changed()
        self.conversationChanged.emit(conv.key)

    def _alert_for(self, conv: Conversation, message: dict[str, Any], mentioned: bool) -> None:
        """A notification for a message we have not seen: always in a direct chat; in a
        room as our level there says (all, mentions only, none)."""
        sender = message["from"]["username"]
        text = message["text"].replace("\n", " ")[:200]
        if conv.key[0] == "dm":
            self.alert.emit(sender, text, conv.key)
        elif conv.notify == "all" or (conv.notify == "mentions" and mentioned):
            where = f"{sender} mentioned you in #{conv.title}" if mentioned else None
            self.alert.emit(where or f"{sender} in #{conv.title}", text, conv.key)

    # ------------------------------------------------------------------ unread

    @property
    def unread_total(self) -> int:
        return sum(c.unread for c in self.conversations.values())

    def _unread_total_changed(self) -> None:
        total = self.unread_total
        if total != self._last_total:
            self._last_total = total
            self.unreadChanged.emit(total)

    def mark_read(self, conv: Conversation, through: int | None = None) -> bool:
        """Everything in the conversation has been seen (or up to seq `through`): here,
        and on every device. True if that changed anything."""
        changed = self.reads.mark_read(conv, through, self.me)
        self._unread_total_changed()
        return changed

    def apply_read(self, conv: Conversation, read: dict[str, Any], counted_through: int) -> None:
        if self.reads.apply(conv, read, counted_through):
            if conv.key == self.active and self.watching:
                self.reads.mark_read(conv)  # on screen: what the server counted is seen
            self._unread_total_changed()

    def by_room_id(self, room_id: int) -> Conversation | None:
        return next((c for c in self.conversations.values() if c.room_id == room_id), None)

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
