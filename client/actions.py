"""What the user asks the server for: opening a conversation and its older history,
friend requests and answers, rooms, member lists, and sending messages (the outbox).
The replies update `ChatState`; views read the state and act through these.

A message is shown at once as pending; it is sent now or after a reconnect (the outbox
goes out when the session resumes), always with the same client_id, so the server keeps
one copy, and it is marked failed only when the server refuses it.
"""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtCore import QObject, QTimer

from chatroom.protocol import ErrorCode

from .conversations import FAILED, PENDING, SENT, dm_fields, dm_key, now_ms
from .net import RETRYABLE
from .state import ChatState
from .typing_hints import TypingSender

Callback = Any  # Callable[[dict], None]

MAX_SEND_ATTEMPTS = 5
MAX_RATE_LIMITED = 100  # a message waits its turn this many times before it fails


class ChatActions(QObject):
    def __init__(self, state: ChatState) -> None:
        super().__init__(state)
        self.state = state
        self.client = state.client
        self.outbox: list[dict[str, Any]] = []
        state.resumed.connect(self.flush_outbox)
        self.typing = TypingSender(self._send_typing)

    def _send_typing(self, key: tuple[str, str], on: bool) -> None:
        where = {"room": key[1]} if key[0] == "room" else {"to": key[1]}
        # A hint refused or lost is of no consequence: the next keystroke renews it.
        self.client.request("typing", {**where, "on": on}, lambda _reply: None)

    def open_conversation(self, key: tuple[str, str]) -> None:
        self.state.active = key
        conv = self.state.conversation(key)
        self.state.mark_read(conv)  # the user just picked it: what is there is seen
        if len(conv.messages) < 30 and conv.has_more:
            self.load_older(key)
        self.state.conversationChanged.emit(key)

    def load_older(self, key: tuple[str, str]) -> None:
        conv = self.state.conversation(key)
        if not conv.has_more:
            return
        seqs = [m["seq"] for m in conv.messages if m.get("seq")]
        fields: dict[str, Any] = {"limit": 50}
        if seqs:
            fields["before"] = min(seqs)
        if key[0] == "room":
            op, fields["room"] = "room.history", key[1]
        else:
            op = "dm.history"
            fields.update(dm_fields(key))

        def done(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                if reply["error"]["code"] in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
                    conv.has_more = False  # no messages with this friend yet
                return
            conv.has_more = reply["has_more"]
            self.state.add_page(conv, reply["messages"])

        self.client.request(op, fields, done)

    def request_friend(self, username: str, done: Callback) -> None:
        def asked(reply: dict[str, Any]) -> None:
            if reply.get("ok") and reply.get("status") == "pending":
                who = reply["to"]["username"]
                if not any(r["user"]["username"] == who for r in self.state.outgoing):
                    self.state.outgoing.append({"user": reply["to"], "ts": now_ms()})
                self.state.friendsChanged.emit()
            done(reply)

        self.client.request("friend.request", {"username": username}, asked)

    def answer_request(self, username: str, accept: bool, done: Callback) -> None:
        def answered(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.state.drop_incoming(username)
                verb = "accepted" if accept else "rejected"
                self.state.record(f"You {verb} {username}'s friend request", mine=True)
            else:
                self.state.accepting.discard(username)
            done(reply)

        if accept:
            self.state.accepting.add(username)
        op = "friend.accept" if accept else "friend.reject"
        self.client.request(op, {"username": username}, answered)

    def remove_friend(self, username: str, done: Callback) -> None:
        def removed(reply: dict[str, Any]) -> None:
            if reply.get("ok") and self.state.friends.pop(username, None) is not None:
                self.state.record(f"You removed {username} from your friends", mine=True)
                if self.state.active == dm_key(username):
                    self.state.active = None
                self.state.friendsChanged.emit()
                self.state.conversationsChanged.emit()
            done(reply)

        self.client.request("friend.remove", {"username": username}, removed)

    def list_rooms(self, query: str, done: Callback) -> None:
        """Rooms whose name contains `query` (all of them for ""), as many as one reply
        carries: the reply says has_more when there are others."""
        self.client.request("room.list", {"query": query} if query else {}, done)

    def join_room(self, name: str, done: Callback) -> None:
        self.client.request("room.join", {"room": name}, self._entered(done))

    def create_room(self, name: str, done: Callback, private: bool = False) -> None:
        fields = {"room": name, "visibility": "private" if private else "public"}
        self.client.request("room.create", fields, self._entered(done))

    def moderate(self, op: str, fields: dict[str, Any], done: Callback) -> None:
        """A room.* moderation op (invite, kick, ban, unban, set_role, update, delete,
        bans); the room.event push updates the state for everyone, us included."""
        self.client.request(op, fields, done)

    def _entered(self, done: Callback) -> Callback:
        def entered(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.state.joined_room({"room": reply["room"]})
            done(reply)

        return entered

    def leave_room(self, name: str, done: Callback) -> None:
        def left(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.state.left_room({"room": {"name": name}})
            done(reply)

        self.client.request("room.leave", {"room": name}, left)

    def set_notify(self, key: tuple[str, str], level: str, done: Callback) -> None:
        """Our notification level in a room (all, mentions, none), for all our devices."""
        conv = self.state.conversation(key)

        def set_(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                conv.notify = reply["level"]
                self.state.conversationChanged.emit(key)
            done(reply)

        self.client.request("room.notify", {"room": key[1], "level": level}, set_)

    def set_read_receipts(self, enabled: bool, done: Callback) -> None:
        """Share our read markers in direct chats (or stop); turned on, the reply has
        the markers of the people who share theirs."""

        def switched(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.state.read_receipts = reply["enabled"]
                for conv in self.state.conversations.values():
                    conv.peer_read_seq = None
                for shown in reply.get("receipts", []):
                    conv_ = self.state.by_room_id(shown["room_id"])
                    if conv_ is not None:
                        conv_.peer_read_seq = shown["seq"]
                self.state.settingsChanged.emit()
                self.state.conversationsChanged.emit()
            done(reply)

        self.client.request("read.receipts", {"enabled": enabled}, switched)

    def load_members(self, key: tuple[str, str]) -> None:
        conv = self.state.conversation(key)

        def done(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                conv.members = reply["members"]
                self.state.membersChanged.emit(key)

        self.client.request("room.members", {"room": key[1]}, done)

    def send(
        self, key: tuple[str, str], text: str, reply_to: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Show the message at once as pending; it is sent now or after a reconnect and
        is marked failed only when the server refuses it. `reply_to`: the message it
        answers (shown quoted)."""
        local = {
            "id": None,
            "client_id": uuid.uuid4().hex,
            "from": dict(self.state.me),
            "text": text,
            "ts": None,
            "state": PENDING,
            "attempts": 0,
            "key": key,
        }
        if reply_to is not None:
            local["reply_to"] = {
                "id": reply_to["id"],
                "seq": reply_to.get("seq"),
                "from": reply_to["from"],
                "text": reply_to["text"][:200],
                "deleted": False,
            }
        self.state.conversation(key).add(local)
        self.outbox.append(local)
        self.state.conversationChanged.emit(key)
        self._send_one(local)
        return local

    def resend(self, key: tuple[str, str], failed: dict[str, Any]) -> None:
        """A message that was not sent, sent again (as a new message: the server stored
        none of it) in its place at the end."""
        self.discard(key, failed)
        self.send(key, failed["text"], failed.get("reply_to"))

    def discard(self, key: tuple[str, str], failed: dict[str, Any]) -> None:
        """A message that was not sent, removed from this device's view."""
        self.state.conversation(key).discard(failed)
        self.state.conversationChanged.emit(key)

    def change_message(
        self, key: tuple[str, str], message: dict[str, Any], text: str | None, done: Callback
    ) -> None:
        """Edit the message to `text`, or delete it (None); shown changed once the server
        has stored the change (its reply is applied like the push other devices get)."""

        def changed(reply: dict[str, Any]) -> None:
            if reply.get("ok"):
                self.state.conversation(key).apply_change(reply["change"])
                self.state.conversationChanged.emit(key)
            done(reply)

        if text is None:
            self.client.request("message.delete", {"message": message["id"]}, changed)
        else:
            self.client.request("message.edit", {"message": message["id"], "text": text}, changed)

    def flush_outbox(self) -> None:
        for local in list(self.outbox):
            self._send_one(local)

    def _send_one(self, local: dict[str, Any]) -> None:
        if self.client.state != "online":
            return  # stays pending; flushed after the reconnect
        key = local["key"]
        local["attempts"] += 1
        fields = {"text": local["text"], "client_id": local["client_id"]}
        if local.get("reply_to"):
            fields["reply_to"] = local["reply_to"]["id"]
        if key[0] == "room":
            op, fields["room"] = "room.send", key[1]
        else:
            op, fields["to"] = "dm.send", key[1]

        def done(reply: dict[str, Any]) -> None:
            conv = self.state.conversation(key)
            if reply.get("ok"):
                self._finish(local)
                # A first message creates a direct chat: its id is how the server's
                # read pushes and receipts name it.
                conv.room_id = reply["message"].get("room_id", conv.room_id)
                conv.add({**reply["message"], "state": SENT})
                if conv.key == self.state.active and self.state.watching:
                    self.state.mark_read(conv)
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
                conv.add({**local, "state": FAILED, "error": failure_text(local, error)})
            self.state.conversationChanged.emit(key)

        self.client.request(op, fields, done)

    def _retry(self, local: dict[str, Any]) -> None:
        if local in self.outbox:
            self._send_one(local)

    def _finish(self, local: dict[str, Any]) -> None:
        if local in self.outbox:
            self.outbox.remove(local)


def failure_text(local: dict[str, Any], error: dict[str, Any]) -> str:
    """Why a message was refused, in the user's words where the server's are a field
    name ("reply_to: no message 19 in this conversation")."""
    if (
        error["code"] == ErrorCode.NOT_FOUND
        and local.get("reply_to")
        and error["message"].startswith("reply_to:")
    ):
        return "the message it replies to was deleted"
    return str(error["message"])
