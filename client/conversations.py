"""The client's model of a conversation: its messages in seq order, each stored once
(a push, a sync and a history page may all bring the same message), its sync cursor and
read marker, and the keys conversations go by."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from chatroom.names import may_mention, mention_keys, username_key
from chatroom.protocol import DELETED_USER, MAX_MENTIONS

PENDING, SENT, FAILED = "pending", "sent", "failed"  # a message's "state" in the client


def room_key(name: str) -> tuple[str, str]:
    return ("room", name)


def dm_key(username: str) -> tuple[str, str]:
    return ("dm", username)


# A deleted account's direct chat goes by its id: every such account is "deleted user".
_DELETED_PREFIX = f"{DELETED_USER} #"


def peer_key(peer: dict[str, Any]) -> tuple[str, str]:
    """A direct chat's key from the other person as the server gives them ({id,
    username}). A deleted account's chats would all be ("dm", "deleted user"), so each
    goes by the account's id instead ("deleted user #7", which no username can be: they
    have no spaces), and is asked for by that id (dm_fields)."""
    if peer["username"] == DELETED_USER:
        return ("dm", f"{_DELETED_PREFIX}{peer['id']}")
    return dm_key(peer["username"])


def with_deleted_account(key: tuple[str, str]) -> bool:
    return key[0] == "dm" and key[1].startswith(_DELETED_PREFIX)


def title_of(key: tuple[str, str]) -> str:
    """What a conversation is called on screen."""
    return DELETED_USER if with_deleted_account(key) else key[1]


def room_label(conv: Conversation) -> str:
    """A room as sentences and titles name it: #lobby, or 🔒 Family for a private room
    (as the list and the header mark it)."""
    return f"🔒 {conv.key[1]}" if conv.visibility == "private" else f"#{conv.key[1]}"


def dm_fields(key: tuple[str, str]) -> dict[str, Any]:
    """The fields naming a direct chat in dm.history and read.mark: the other person's
    name, or a deleted account's id (docs/protocol.md, dm.history)."""
    if with_deleted_account(key):
        return {"with_id": int(key[1].removeprefix(_DELETED_PREFIX))}
    return {"with": key[1]}


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
    notify: str = "all"  # our notification level here (room.notify): all, mentions, none
    # The other person's read marker in a direct chat, when both of us share receipts.
    peer_read_seq: int | None = None
    has_more: bool = True  # older history may exist on the server
    # The sync cursor: we hold every message up to here (from where we started). It
    # only moves over an unbroken run: a history page of the newest messages must not
    # make sync skip what lies between.
    last_seq: int = 0
    read_seq: int = 0  # our read marker (the server's, shared by our devices)
    # `unread` as the server counted it covers every message up to here: only newer
    # ones add to it (a sync fetching the backlog must not count it twice).
    counted_through: int = 0
    unread_capped: bool = False  # more than the server counts (chatroom.protocol.UNREAD_CAP)
    members: list[dict[str, Any]] | None = None  # room.members, once asked for
    # A room's settings as the server last said (snapshot, sync, room.event pushes).
    role: str = "member"  # ours: owner, moderator or member
    topic: str = ""
    announce: bool = False  # announcement mode: only moderators and owners post
    visibility: str = "public"
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

    def discard(self, message: dict[str, Any]) -> None:
        """Forget a message the server never stored (a failed send the user removes)."""
        if message.get("id") is not None or not message.get("client_id"):
            return
        kept = self._known.pop(client_key(message), None)
        if kept is not None and kept in self.messages:
            self.messages.remove(kept)

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

    def apply_change(self, change: dict[str, Any]) -> bool:
        """An edit or delete (a push, or a sync's `events`): the message it names is
        replaced by its new version where it stands, and so are the replies quoting it;
        its seq counts as held. True if something shown changed.

        Replaced, not updated in place: the message view finds the rows to repaint by
        identity (widgets.MessageModel.set_messages), and a dict changed in place kept
        showing the old text until something else repainted the list."""
        self._held(change.get("seq"))
        target = change["target"]
        changed = False
        if "text" in change or change.get("deleted"):
            update = (
                {"text": "", "deleted": True}
                if change.get("deleted")
                else {"text": change["text"], "edited_at": change.get("edited_at")}
            )
            message = self._known.get(("id", target))
            if message is not None:
                self.replace(message, {**message, **update})
                changed = True
            for row, message in enumerate(self.messages):
                quoted = message.get("reply_to")
                if quoted and quoted.get("id") == target:
                    self.replace(message, {**message, "reply_to": {**quoted, **update}}, row)
                    changed = True
        return changed

    def replace(self, old: dict[str, Any], new: dict[str, Any], row: int | None = None) -> None:
        """A new version of a message held here, where the old one stood (at `row`, when
        the caller knows it)."""
        if row is None:
            row = next((n for n, message in enumerate(self.messages) if message is old), None)
        if row is not None:
            self.messages[row] = new
        self._remember(new)

    def index_of(self, message_id: int) -> int:
        """Where the message is in `messages`, or -1 (not loaded)."""
        message = self._known.get(("id", message_id))
        return self.messages.index(message) if message is not None else -1


def shown_text(message: dict[str, Any]) -> str:
    """What a message's bubble says: the quoted original of a reply on a line of its own,
    then the text with "(edited)", or "(message deleted)" for a tombstone."""
    lines = []
    quoted = message.get("reply_to")
    if quoted:
        said = "(message deleted)" if quoted.get("deleted") else quoted.get("text", "")
        lines.append(f"↪ {quoted['from']['username']}: {said.replace(chr(10), ' ')[:80]}")
    if message.get("deleted"):
        lines.append("(message deleted)")
    else:
        lines.append(message["text"] + (" (edited)" if message.get("edited_at") else ""))
    return "\n".join(lines)


def moderates(conv: Conversation) -> bool:
    return conv.role in ("owner", "moderator")


def may_post(conv: Conversation) -> bool:
    """False in an announcement room where we are a plain member."""
    return not (conv.key[0] == "room" and conv.announce and not moderates(conv))


_DID = {
    "invite": "invited",
    "kick": "removed",
    "ban": "banned",
    "unban": "unbanned",
}


def event_line(event: dict[str, Any]) -> str:
    """A room's moderation event as the conversation shows it: "ann banned bob"."""
    who = (event.get("by") or {}).get("username") or "The operator"
    whom = (event.get("target") or {}).get("username", "")
    action, detail = event.get("action", ""), event.get("detail", "")
    if action in _DID:
        return f"{who} {_DID[action]} {whom}"
    if action == "role":
        article = "an" if detail == "owner" else "a"
        return f"{who} made {whom} {article} {detail}"
    if action == "topic":
        return f"{who} set the topic: {detail}" if detail else f"{who} cleared the topic"
    if action == "announce":
        state = "on" if detail == "on" else "off"
        return f"{who} turned announcement mode {state}"
    if action == "delete":
        return f"{who} deleted the room"
    return f"{who}: {action}"


def as_line(item: dict[str, Any]) -> dict[str, Any]:
    """A moderation event as stored among the messages (seq order) and shown as a centred
    line; any other message as it is."""
    if item.get("kind") != "event":
        return item
    return {**item, "from": {"id": 0, "username": ""}, "text": event_line(item)}


def left_notice(reason: str, label: str) -> str:
    """What to tell a user whom a moderator's action took out of a room (`label`:
    room_label's, "#lobby" or "🔒 Family")."""
    return {
        "kicked": f"You were removed from {label}",
        "banned": f"You were banned from {label}",
        "deleted": f"{label} was deleted by its owner",
    }.get(reason, f"You left {label}")


def apply_room_event(conv: Conversation, event: dict[str, Any], me: str) -> bool:
    """What a room.event changes in the conversation (topic, announcement mode, our role,
    the member list); True if the member list changed."""
    action, detail = event["action"], event.get("detail", "")
    target = (event.get("target") or {}).get("username")
    if action == "topic":
        conv.topic = detail
    elif action == "announce":
        conv.announce = detail == "on"
    elif action == "role" and target == me:
        conv.role = detail
    if conv.members is None or not target:
        return False
    if action in ("kick", "ban"):
        conv.members = [m for m in conv.members if m["username"] != target]
    elif action == "invite" and all(m["username"] != target for m in conv.members):
        conv.members.append({**event["target"], "role": "member", "online": False, "status": ""})
    elif action == "role":
        for member in conv.members:
            if member["username"] == target:
                member["role"] = detail
    return action in ("kick", "ban", "role", "invite")


def mentions(text: str, username: str) -> bool:
    """`@username` in the text by the server's rule (chatroom.names.mention_keys: by the
    name's key, so '@BOB' and '＠ｂｏｂ' are bob; not inside a longer name or an address;
    the first MAX_MENTIONS names of a message)."""
    if not username or not may_mention(text):
        return False
    mine = username_key(username)
    return any(mine in keys for keys in mention_keys(text, MAX_MENTIONS))


def mentions_me(message: dict[str, Any], me: dict[str, Any]) -> bool:
    """Whether a message mentions us: the server's list of who it mentions when it came
    live (members only, as counted), else the text by the same rule."""
    if "mentions" in message:
        return me.get("id") in message["mentions"]
    return mentions(message["text"], me.get("username", ""))


def receipt_ticks(conv: Conversation, message: dict[str, Any]) -> str:
    """What one of our messages in a direct chat shows when both of us share read
    receipts: "✓" stored, "✓✓" read by the other person; nothing otherwise. A deleted
    message (a tombstone) shows none: there is nothing left of it to have been read."""
    if conv.key[0] != "dm" or conv.peer_read_seq is None or not message.get("seq"):
        return ""
    if message.get("deleted"):
        return ""
    return "✓✓" if message["seq"] <= conv.peer_read_seq else "✓"
