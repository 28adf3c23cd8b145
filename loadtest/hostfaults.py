"""Clients and a checker for the fault suite across hosts (chatroom/hosts.py, issue #18).

Members live in the root namespace, spread over the hosts' edges (member i starts on
host i % hosts), all in the lobby and each a friend of the next (a ring), so that
presence has something to show. Some members are senders: each sends numbered messages
(mostly to the lobby, every `DM_EVERY`-th to its ring friend), one at a time, each with a
client_id, and sends it again with the same client_id on service_unavailable, a timeout
or a lost connection, as the desktop client does. Every member records every message
that reaches it: live pushes, the `sync` after each reconnect, its own acknowledged
sends. A member pings every PING_EVERY_S; a connection that closes or stops answering is
given up and the member resumes its session by token on the next host's edge.

The checker (`check`) then says, per acknowledged message (Jepsen style):
- lost: not in the stored history (a `sync` from the start, at the end, by a fresh login);
- duplicated: stored twice (two messages with its text) or pushed twice to one connection;
- out of order: its seq not above the previous acknowledged message of its sender (in
  that conversation), or a stored history not in ascending seq order (pushes that arrive
  out of seq order are counted apart: `pushes_out_of_seq_order`);
- missed: not in the view of a member who should have it (live, or by its syncs: after
  each reconnect, on a gap in seqs as the desktop client does, and one at the end);
- unexpected: a message seen that no sender sent, or whose id differs from the one its
  sender was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from loadtest.aclient import AsyncChat, ChatError

PASSWORD = "hostfaults-password"
PING_EVERY_S = 1.0
PING_TIMEOUT_S = 2.0  # a host that stops answering is given up within ~3 s
CONNECT_TIMEOUT_S = 2.0
LOGIN_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 6.0  # above the edge's own request timeout and retry
SEND_GIVE_UP_S = 90.0  # a message not acknowledged by then is left unacknowledged
DM_EVERY = 4
GAP_GRACE_S = 0.5
LOBBY = "lobby"


@dataclass
class Seen:
    """A message as one member got it."""

    id: int
    room_id: int
    seq: int
    text: str
    via: str  # "live", "sync" (after a connect), "gap-sync", "end-sync" or "ack"
    conn: int  # which connection of the member (1, 2, ...)


@dataclass
class Move:
    """A member's connection lost and its session resumed elsewhere."""

    lost_at: float  # monotonic: when the member noticed
    resumed_at: float | None
    from_host: int
    to_host: int | None
    why: str
    planned: bool = False  # sent home after a recovery, not a failure
    # Each failed attempt on the way: (seconds since lost_at, host, what failed).
    attempts: list[tuple[float, int, str]] = field(default_factory=list)


@dataclass
class Sent:
    sender: str
    n: int
    text: str
    to: str | None  # None: the lobby; else the friend's name
    attempts: int = 0
    first_at: float = 0.0
    acked_at: float | None = None
    message: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


class Member:
    def __init__(self, index: int, name: str, hosts: list[str], port: int) -> None:
        self.index = index
        self.name = name
        self.hosts = hosts
        self.port = port
        self.home = index % len(hosts)
        self.host = self.home
        self.chat: AsyncChat | None = None
        self.conn_no = 0
        self.token: str | None = None
        self.seen: list[Seen] = []
        self.seen_ids: set[int] = set()
        self.cursors: dict[int, int] = {}  # room_id -> every seq up to it is held
        self.held: dict[int, set[int]] = {}  # room_id -> the seqs held
        self.last_live: dict[tuple[int, int], int] = {}  # (conn, room_id) -> last seq
        self.live_ids: set[tuple[int, int]] = set()  # (conn, message id) pushed
        self.live_dups: list[tuple[int, int]] = []  # (message id, conn)
        self.live_disorder: list[tuple[int, int, int]] = []  # (room_id, prev seq, seq)
        self.friends: dict[str, bool] = {}  # friend -> online, as this member sees it
        self.presence_versions: dict[str, int] = {}  # friend -> the version behind it
        # Every presence push: (monotonic time, connection, friend, online).
        self.presence_log: list[tuple[float, int, str, bool]] = []
        self.moves: list[Move] = []
        self.connected = asyncio.Event()
        self.stopping = False
        self.want_host: int | None = None
        # Log in again where it is (a fresh snapshot of friends' presence).
        self.refresh = False
        self._dropped = ""  # why this member gave its connection up (drop)
        self.gap_task: asyncio.Future | None = None
        self.gap_syncs = 0

    # ------------------------------------------------------------------ what arrives

    def _record(self, message: dict[str, Any], via: str) -> None:
        room_id = int(message.get("room_id", 0))
        self.seen.append(
            Seen(message["id"], room_id, message["seq"], message.get("text", ""), via, self.conn_no)
        )
        self.seen_ids.add(message["id"])
        self._held(room_id, message["seq"])

    def _held(self, room_id: int, seq: int) -> None:
        """The cursor as the desktop client keeps it (client/conversations.py): the end
        of the unbroken run of seqs held, so that pushes arriving out of seq order, or
        a member's own send acknowledged before an earlier push arrives, never make the
        next sync skip a message."""
        held = self.held.setdefault(room_id, set())
        held.add(seq)
        cursor = self.cursors.get(room_id, 0)
        while cursor + 1 in held:
            cursor += 1
        self.cursors[room_id] = cursor

    def on_event(self, frame: dict[str, Any], _now: int) -> None:
        event = frame.get("event")
        if event == "message":
            key = (self.conn_no, int(frame.get("room_id", 0)))
            if (self.conn_no, frame["id"]) in self.live_ids:
                self.live_dups.append((frame["id"], self.conn_no))
            self.live_ids.add((self.conn_no, frame["id"]))
            previous = self.last_live.get(key, 0)
            if frame["seq"] <= previous:
                self.live_disorder.append((key[1], previous, frame["seq"]))
            self.last_live[key] = frame["seq"]
            cursor = self.cursors.get(key[1], 0)
            self._record(frame, "live")
            if cursor and frame["seq"] > cursor + 1 and self.gap_task is None:
                # As the desktop client (client/state.py): a push past a gap means
                # something was missed; sync fills it.
                self.gap_task = asyncio.ensure_future(self._fill_gap())
        elif event == "presence":
            # As the desktop client: the highest presence_version of a friend is the
            # news (pushes of different replicas cross; a push may come again).
            if not self._presence_is_news(frame["user"]["username"], frame):
                return
            self.friends[frame["user"]["username"]] = bool(frame.get("online"))
            self.presence_log.append(
                (
                    time.monotonic(),
                    self.conn_no,
                    frame["user"]["username"],
                    bool(frame.get("online")),
                )
            )
        elif event == "friend.accepted":
            friend = frame["friend"]
            if self._presence_is_news(friend["username"], friend):
                self.friends[friend["username"]] = bool(friend.get("online"))

    def _presence_is_news(self, username: str, presence: dict[str, Any]) -> bool:
        """Whether a push or a snapshot's entry is at least as new as what we hold."""
        version = int(presence.get("presence_version", 0))
        if version < self.presence_versions.get(username, 0):
            return False
        self.presence_versions[username] = version
        return True

    async def _fill_gap(self) -> None:
        """Sync once the pushes that were merely late have had a moment to land (pushes
        of one conversation may cross: see check)."""
        try:
            await asyncio.sleep(GAP_GRACE_S)
            if self.chat is None or not any(
                max(held) > self.cursors.get(room_id, 0) for room_id, held in self.held.items()
            ):
                return
            self.gap_syncs += 1
            with contextlib.suppress(TimeoutError, ConnectionError, OSError, ChatError):
                await self.sync(via="gap-sync")
        finally:
            self.gap_task = None

    # ------------------------------------------------------------------ the connection

    async def _open(self, host: int) -> None:
        chat = AsyncChat(self.on_event)
        await asyncio.wait_for(chat.connect(self.hosts[host], self.port), CONNECT_TIMEOUT_S)
        try:
            self.conn_no += 1
            if self.token is None:
                with contextlib.suppress(ChatError):
                    await chat.call(
                        "register", LOGIN_TIMEOUT_S, username=self.name, password=PASSWORD
                    )
                reply = await chat.call(
                    "login", LOGIN_TIMEOUT_S, username=self.name, password=PASSWORD
                )
            else:
                reply = await chat.call("login", LOGIN_TIMEOUT_S, token=self.token)
            self.token = reply["token"]
            for friend in reply.get("friends", []):
                if self._presence_is_news(friend["username"], friend):
                    self.friends[friend["username"]] = bool(friend.get("online"))
        except BaseException:
            await chat.close()
            raise
        self.chat = chat
        self.host = host

    async def sync(self, via: str = "sync") -> None:
        """What was missed since this member's cursors (as a client after a reconnect),
        page by page (bounded)."""
        assert self.chat is not None
        for _ in range(200):
            reply = await self.chat.call(
                "sync", LOGIN_TIMEOUT_S, cursors={str(k): v for k, v in self.cursors.items()}
            )
            for conversation in reply["conversations"]:
                for message in conversation.get("messages", []):
                    message.setdefault("room_id", conversation["id"])
                    if message["id"] not in self.seen_ids:
                        self._record(message, via)
                for change in conversation.get("events", []):  # edits, moderation
                    self._held(conversation["id"], change["seq"])
            if not reply.get("has_more"):
                return
        raise RuntimeError("sync did not end in 200 pages")

    async def connect_somewhere(
        self, first: int, give_up_s: float = 60.0, move: Move | None = None
    ) -> None:
        """Resume on host `first`, else the next ones in turn, until `give_up_s`."""
        started = time.monotonic()
        deadline = started + give_up_s
        host = first
        for _ in range(1000):
            try:
                await self._open(host)
                await self.sync()
                self.connected.set()
                return
            except (TimeoutError, OSError, ChatError, ConnectionError, RuntimeError) as exc:
                if move is not None:
                    why = str(exc) if isinstance(exc, ChatError) else type(exc).__name__
                    move.attempts.append((round(time.monotonic() - started, 2), host, why))
                if self.chat is not None:
                    await self.chat.close()
                    self.chat = None
                if time.monotonic() > deadline:
                    raise
                # An edge that answered with an error is alive: ask it again (another
                # replica may answer); one that did not answer: the next host.
                if not isinstance(exc, ChatError):
                    host = (host + 1) % len(self.hosts)
                await asyncio.sleep(0.2)
        raise RuntimeError("too many connection attempts")

    def drop(self, why: str) -> None:
        """Give this connection up (the supervisor resumes elsewhere)."""
        if self.chat is not None:
            chat, self.chat = self.chat, None
            self.connected.clear()
            self._dropped = why
            asyncio.ensure_future(chat.close())

    async def supervise(self) -> None:
        """Keep this member connected: ping; on a failure move to another host."""
        while not self.stopping:
            chat = self.chat
            failure = ""
            if chat is None or chat.closed:
                failure = self._dropped or "closed by the server"
            else:
                try:
                    await chat.call("ping", PING_TIMEOUT_S)
                except (TimeoutError, ConnectionError, OSError, ChatError) as exc:
                    failure = f"ping: {type(exc).__name__}"
            if self.stopping:
                return
            if not failure and self.want_host is not None and self.want_host != self.host:
                failure = "sent home"
            if not failure and self.refresh:
                failure = "refresh"
            if failure:
                planned = failure in ("sent home", "refresh")
                self.refresh = False
                if self.chat is not None:
                    await self.chat.close()
                    self.chat = None
                self.connected.clear()
                move = Move(time.monotonic(), None, self.host, None, failure, planned)
                self.moves.append(move)
                # Another host's edge unless sent somewhere on purpose.
                target = self.want_host if planned else (self.host + 1) % len(self.hosts)
                if failure == "refresh":
                    target = self.host
                self.want_host = None
                await self.connect_somewhere(target if target is not None else self.host, move=move)
                move.resumed_at, move.to_host = time.monotonic(), self.host
                self._dropped = ""
                continue
            await asyncio.sleep(PING_EVERY_S)

    async def close(self) -> None:
        self.stopping = True
        if self.chat is not None:
            await self.chat.close()
            self.chat = None


class Sender:
    """Sends numbered messages from `member`, one at a time, at about `rate` per second."""

    def __init__(self, member: Member, friend: str, rate: float) -> None:
        self.member = member
        self.friend = friend
        self.rate = rate
        self.sent: list[Sent] = []
        self.stopping = False

    async def send_one(self, n: int) -> Sent:
        name = self.member.name
        to = self.friend if n % DM_EVERY == DM_EVERY - 1 else None
        item = Sent(name, n, f"{name} #{n}", to, first_at=time.monotonic())
        self.sent.append(item)
        fields: dict[str, Any] = {"text": item.text, "client_id": f"{name}-{n}"}
        op = "dm.send" if to else "room.send"
        fields.update({"to": to} if to else {"room": LOBBY})
        while time.monotonic() - item.first_at < SEND_GIVE_UP_S:
            if not self.member.connected.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.member.connected.wait(), 5)
                continue
            chat = self.member.chat
            if chat is None:
                await asyncio.sleep(0.1)
                continue
            item.attempts += 1
            try:
                reply = await chat.call(op, SEND_TIMEOUT_S, **fields)
            except ChatError as exc:
                item.errors.append(str(exc.code))
                await asyncio.sleep(0.2)  # service_unavailable and the like: again
                continue
            except (TimeoutError, ConnectionError, OSError) as exc:
                item.errors.append(type(exc).__name__)
                if chat is self.member.chat and isinstance(exc, ConnectionError | OSError):
                    self.member.drop("send failed")
                continue
            item.message, item.acked_at = reply["message"], time.monotonic()
            self.member._record(reply["message"], "ack")
            return item
        return item

    async def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stopping:
            await self.send_one(n)
            n += 1
            next_at = max(next_at + 1 / self.rate, time.monotonic())
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


# ---------------------------------------------------------------------- the checker


async def stored_history(host: str, port: int, name: str) -> dict[int, list[dict[str, Any]]]:
    """Every conversation of member `name` from the start (a fresh login, sync from 0):
    room_id -> its messages in the order the server gives them."""
    chat = AsyncChat()
    await chat.connect(host, port)
    try:
        await chat.call("login", LOGIN_TIMEOUT_S, username=name, password=PASSWORD)
        cursors: dict[str, int] = {}
        out: dict[int, list[dict[str, Any]]] = {}
        for _ in range(10_000):
            reply = await chat.call("sync", 30, cursors=cursors)
            for conversation in reply["conversations"]:
                messages = conversation.get("messages", [])
                out.setdefault(conversation["id"], []).extend(messages)
                if messages:
                    cursors[str(conversation["id"])] = messages[-1]["seq"]
            if not reply.get("has_more"):
                return out
        raise RuntimeError("stored history did not end")
    finally:
        await chat.close()


def problems(verdict: dict[str, Any]) -> dict[str, int]:
    """The verdict's counts that must be zero, where they are not."""
    names = ("lost", "duplicated", "out_of_order", "unexpected", "missed_by_members")
    return {name: verdict[name] for name in names if verdict[name]}


def check(
    members: list[Member],
    senders: list[Sender],
    stored: dict[str, dict[int, list[dict[str, Any]]]],
) -> dict[str, Any]:
    """The verdict over every acknowledged message and every member's view.
    `stored`: stored_history of each sender (whose conversations hold all it sent)."""
    acked = [s for sender in senders for s in sender.sent if s.message is not None]
    unacked = [s for sender in senders for s in sender.sent if s.message is None]
    by_text = {s.text: s for sender in senders for s in sender.sent}
    lost, duplicated, disorder, unexpected = [], [], [], []
    # Stored: each acknowledged message once, in its sender's conversations.
    stored_texts: dict[str, list[int]] = {}
    for owner, history in stored.items():
        for room_id, messages in history.items():
            seqs = [m["seq"] for m in messages]
            if seqs != sorted(set(seqs)):
                disorder.append({"stored": owner, "room_id": room_id, "not_ascending": True})
            for message in messages:
                stored_texts.setdefault(message.get("text", ""), []).append(message["id"])
    for s in acked:
        assert s.message is not None
        ids = set(stored_texts.get(s.text, []))
        if not ids:
            lost.append(s.text)
        elif len(ids) > 1:
            duplicated.append({"text": s.text, "stored_ids": sorted(ids)})
        elif s.message["id"] not in ids:
            unexpected.append({"text": s.text, "acked_id": s.message["id"], "stored": sorted(ids)})
    # Order per sender and conversation: acknowledged one after another, so seqs rise.
    for sender in senders:
        last: dict[str | None, int] = {}
        for s in sender.sent:
            if s.message is None:
                continue
            if s.message["seq"] <= last.get(s.to, 0):
                disorder.append({"text": s.text, "seq": s.message["seq"], "after": last[s.to]})
            last[s.to] = s.message["seq"]
    # Every member's view.
    names = {m.name for m in members}
    missed: dict[str, int] = {}
    missed_examples: dict[str, list[str]] = {}
    live_dups = 0
    live_disorder = 0
    arrivals: dict[str, int] = {}  # how each expected message first reached its member
    for member in members:
        live_dups += len(member.live_dups)
        live_disorder += len(member.live_disorder)
        first_via: dict[str, str] = {}
        for x in member.seen:
            first_via.setdefault(x.text, x.via)
        seen_texts = set(first_via)
        for text in seen_texts:
            if text not in by_text and text.split(" #")[0] in names:
                unexpected.append({"member": member.name, "text": text})
        for s in acked:
            should = s.to is None or member.name in (s.sender, s.to)
            if should and s.text not in seen_texts:
                missed[member.name] = missed.get(member.name, 0) + 1
                missed_examples.setdefault(member.name, []).append(s.text)
            elif should:
                arrivals[first_via[s.text]] = arrivals.get(first_via[s.text], 0) + 1
    return {
        "acknowledged": len(acked),
        "unacknowledged": len(unacked),
        "resends": sum(max(0, s.attempts - 1) for s in acked),
        "lost": len(lost),
        "duplicated": len(duplicated) + live_dups,
        "out_of_order": len(disorder),
        # Live pushes of one conversation are not promised in seq order: consecutive
        # messages stored by different social replicas are published by each after its
        # commit, and may cross on the way. Clients place messages by seq (and keep their
        # sync cursor over an unbroken run), so this is counted, not failed.
        "pushes_out_of_seq_order": live_disorder,
        "unexpected": len(unexpected),
        "missed_by_members": sum(missed.values()),
        # "live": pushed; "ack": the sender's own; "sync": fetched after a reconnect;
        # "gap-sync": its push never came, a later push showed the gap and sync fetched
        # it; "end-sync": its push never came and nothing showed it until the final sync.
        "first_arrivals": arrivals,
        "gap_syncs": sum(m.gap_syncs for m in members),
        "details": {
            "lost": lost[:50],
            "duplicated_stored": duplicated[:50],
            "duplicated_live": [
                {"member": m.name, "id": i, "conn": c} for m in members for i, c in m.live_dups
            ][:50],
            "out_of_order_sends": disorder[:50],
            "out_of_order_live": [
                {"member": m.name, "room_id": r, "after": p, "seq": q}
                for m in members
                for r, p, q in m.live_disorder
            ][:50],
            "unexpected": unexpected[:50],
            "missed": {k: v[:10] for k, v in missed_examples.items()},
            "unacknowledged": [{"text": s.text, "errors": s.errors[-5:]} for s in unacked][:50],
        },
    }
