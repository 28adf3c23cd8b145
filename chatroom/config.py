"""Every setting: the Settings dataclass (each ``CHAT_*`` variable's default, meaning and
derived values) and the tables it uses (bus ports, services, rated actions).

Every setting has a default that works for local mode. Reading them from the environment
(``CHAT_X``, or the file ``CHAT_X_FILE`` names, for compose/Docker secrets) and the checks
at start are chatroom.config_env. ``.env.example`` lists them all; a test keeps it in step
with this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from chatroom.ratelimit import Rate, parse_rate

PREFIX = "CHAT_"


class ConfigError(ValueError):
    pass


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


@dataclass(frozen=True)
class Settings:
    # Storage. SQLite file by default; point at MySQL with
    # CHAT_DB_URL=mysql+pymysql://chat@db:3306/chat (password from CHAT_DB_PASSWORD[_FILE]).
    db_url: str = "sqlite:///var/chatroom.db"
    db_password: str = ""
    db_pool_size: int = 8
    # What a service does with a database whose schema is older than its code: "auto"
    # upgrades it (one process at a time; the embedded default and `chatroom up`),
    # "check" refuses to start and names the command (compose runs a one-shot
    # `migrate` service first). A schema newer than the code is refused either way.
    db_migrate: str = "auto"

    # ZeroMQ bus. Services and edges connect; only the bus binds.
    bus_host: str = "127.0.0.1"
    bus_bind_host: str = "127.0.0.1"
    bus_port_base: int = 5550
    # Several buses, so that none is a single point of failure: a comma-separated list of
    # HOST or HOST:PORT_BASE (default port base: bus_port_base). Every edge and service
    # connects to all of them at once; requests go through any live one, events through
    # all (edges keep one copy). Empty: the one bus at bus_host (docs/architecture.md).
    bus_hosts: str = ""
    # CURVE keys of the bus and of every role that connects to it (chatroom/buskeys.py).
    bus_keys_dir: str = "var/bus-keys"
    # Authentication and encryption on the bus. "off" only to measure what they cost.
    bus_curve: bool = True

    # Edge.
    edge_host: str = "127.0.0.1"
    edge_port: int = 2019
    edge_workers: int = 1
    max_frame_bytes: int = 1024 * 1024
    # A client that vanishes without closing its socket (lid shut, network cut) stays
    # online to its friends until this runs out; clients ping at a third of it.
    idle_timeout_s: float = 60.0
    login_timeout_s: float = 10.0
    # Unread output per connection before the client is cut as a slow reader: at least
    # OUTBOUND_FRAMES_OF_SLACK frames, so one reply being read never trips it.
    outbound_queue_bytes: int = 2 * 1024 * 1024
    # Connections not yet logged in, per edge process, and the bytes of unfinished
    # frames they make it hold (each frame at most protocol.PRELOGIN_MAX_FRAME_BYTES).
    # Beyond either, the least recently active one without a request in progress is
    # closed with `server_busy` (see services/tcp_edge/prelogin.py).
    max_prelogin_conns: int = 4096
    max_prelogin_bytes: int = 32 * 1024 * 1024
    max_inflight_per_conn: int = 32
    request_timeout_ms: int = 5000
    request_attempts: int = 2
    drain_timeout_s: float = 5.0

    # Content limits (announced to clients at login).
    max_text_chars: int = 4000
    # How long after sending its author may edit a message (deleting has no window).
    edit_window_s: int = 48 * 3600
    # When an account is deleted (account.delete, chatroom admin erase): off, its
    # messages stay in others' conversations, from "deleted user"; on, each is deleted
    # as message.delete does (a tombstone without text).
    delete_messages_on_account_delete: bool = False
    history_page_max: int = 200
    # Most bytes of messages in one sync or history reply (far below max_frame_bytes: a
    # reply also carries its envelope and always at least one message).
    max_reply_bytes: int = 256 * 1024

    # How often an edge tells auth which sessions are connected to it, so that
    # account.sessions shows a device in use as used lately (tcp_edge/session_use.py);
    # a session that ends is reported within seconds whatever this is. 0: only those.
    session_in_use_s: float = 120.0

    # Social.
    edge_heartbeat_s: float = 5.0
    # An edge silent this long is presumed dead: its users are shown offline.
    edge_dead_after_s: float = 15.0
    max_status_chars: int = 140
    max_pending_friend_requests: int = 50
    # Users one user may block (block.add); each is a row and a set entry at the edge.
    max_blocks: int = 1000
    room_members_max: int = 1000
    sync_page_max: int = 1000

    # Media.
    avatar_max_bytes: int = 512 * 1024
    # Images with more pixels than this are refused before decoding (bomb guard).
    avatar_max_pixels: int = 4096 * 4096
    # Avatar decodes at once per media process. Each holds up to ~16 bytes per pixel of
    # avatar_max_pixels (~260 MB at the default): the media container's 512 MB fits one.
    avatar_decode_workers: int = 1

    # Auth.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    # Hashes at once per auth process (each holds argon2_memory_kib): one of them is kept
    # for sign-ins from a known device; sign-ins from strangers wait at most
    # argon2_queue deep, then get rate_limited at once (services/auth/hashing.py).
    argon2_concurrency: int = 2
    argon2_queue: int = 64
    token_ttl_s: int = 30 * 24 * 3600
    # A session (its token hash and the address it logged in from) is deleted this long
    # after it expired or was logged out; until then it counts as a known device for
    # the failed-login throttle. 0 deletes at the next hourly pass.
    session_retention_days: float = 30.0
    min_password_chars: int = 8
    max_username_chars: int = 32

    # Rate limits (token buckets): "N/Ts" allows a burst of N, refilled at N per T
    # seconds; "off" for none. Messages, friend requests and avatar changes count per
    # user on each edge; login attempts per IP on each edge; failed logins and
    # registrations are counted in the database, so they hold across auth replicas.
    rate_message: str = "60/10s"
    rate_friend_request: str = "20/m"
    rate_avatar: str = "10/m"
    # Rooms created and status changes: each is a write (and a status change a push to
    # every friend), so a script must not be able to loop on them.
    rate_room_create: str = "10/h"
    rate_presence: str = "30/m"
    # Typing hints forwarded to others (the edge drops renewals within 3 s first).
    rate_typing: str = "60/m"
    # A room's typing hints that reach an edge within this long of its last typing push
    # to the room go out together as one push (services/tcp_edge/typing_hints.py,
    # RoomHints); 0: each at once.
    typing_merge_ms: int = 1000
    # While events stream in, how long the first event of a burst waits at the edge
    # for more to join it, so that each connection gets them in one write
    # (services/tcp_edge/delivery.py, BurstLinger); an event after a pause, for a
    # few connections, or while fewer than one a linger come, never waits; 0: none ever
    # waits. Costs at most this much delivery latency; saved a sixth of the edge's CPU
    # per message at 1,000 messages/s into 100 members (docs/benchmarks.md).
    event_linger_ms: float = 3.0
    # After a room member's typing hint was checked against the database, their next
    # ones to that room skip the check for this long (services/social/handlers/typing.py).
    typing_member_trust_s: float = 10.0
    # Joining and leaving rooms, answering and removing friends: each a write and a push
    # to others; generous for people, a stop for a script that loops on them.
    rate_membership: str = "60/m"
    # read.mark and read.receipts: each a write and a push to the user's other
    # sessions (and a receipt to a friend); a client marks as it shows new messages.
    rate_read: str = "120/m"
    # While messages stream in concurrently, how long the first of a group commit may
    # wait for others to join its transaction (chatroom/batching.py); 0: never. A
    # message after a pause never waits. Costs at most this much latency; saved 5-17 %
    # of the server CPU per message at 1,000 messages/s (docs/benchmarks.md).
    group_commit_delay_ms: float = 5.0
    # How long an edge gathers read.marks before sending them to social as one request
    # (services/tcp_edge/read_marks.py); 0: each alone.
    read_mark_linger_ms: int = 250
    # room.notify: a write and a push to the user's other sessions.
    rate_notify: str = "30/m"
    # message.edit and message.delete: each a sequenced event pushed to the conversation.
    rate_edit: str = "30/m"
    # block.add and block.remove: each a write, and a push to the user's sessions (and
    # the end of a friendship pushes to the friend).
    rate_block: str = "30/m"
    # Room moderation (room.invite, kick, ban, unban, set_role, update, delete): each a
    # sequenced event pushed to the room and a row of its audit trail.
    rate_moderation: str = "30/m"
    # account.password, account.logout_others, account.delete: each checks a password
    # or ends sessions (and pushes a goodbye to them); account.export pages: reads that
    # may be large, one reply budget each.
    rate_account: str = "10/m"
    rate_export: str = "120/m"
    rate_login_ip: str = "30/m"
    # Wrong passwords (counted before the check): per account from one address (IPv6:
    # its /64); per address over all accounts and per account over all addresses, these
    # two skipped for an address the account has logged in from before (docs/security.md).
    rate_login_failed_account_ip: str = "5/5m"
    rate_login_failed_ip: str = "20/5m"
    rate_login_failed_account: str = "30/15m"
    rate_register_ip: str = "20/h"
    # Open connections one IP address may hold on one edge process.
    max_conns_per_ip: int = 256
    # Whose avatars a user may fetch: "friends" (own, friends', the default picture) or
    # "everyone".
    avatar_visibility: str = "friends"
    # Whose status text a user sees (in room.members; friend lists and presence pushes
    # only ever go to friends): "friends" (own and friends') or "everyone".
    status_visibility: str = "friends"

    # TLS: a second listening port on the edge (0: none), with a PEM certificate chain
    # and its private key.
    tls_port: int = 0
    tls_cert_file: str = ""
    tls_key_file: str = ""

    # Service runtime.
    worker_threads: int = 8
    # Port on 127.0.0.1 where a service answers `chatroom health` (0: off).
    health_port: int = 0

    # Prometheus metrics at http://HOST:PORT/metrics, per process. "auto": the
    # component's own default (edge 9120, auth 9121, social 9122, media 9123, bus 9124,
    # chatroom.metrics.DEFAULT_PORTS); 0 or "off": none; else the port.
    metrics_port: str = "auto"
    metrics_host: str = "127.0.0.1"

    # Logging.
    log_level: str = "INFO"
    log_json: bool = False

    def with_db_password(self) -> str:
        """db_url with the password from CHAT_DB_PASSWORD inserted, if one is set."""
        if not self.db_password or "://" not in self.db_url:
            return self.db_url
        scheme, rest = self.db_url.split("://", 1)
        userinfo, sep, hostpart = rest.partition("@")
        if not sep or ":" in userinfo:
            return self.db_url
        return f"{scheme}://{userinfo}:{quote(self.db_password, safe='')}@{hostpart}"

    def bus_port(self, name: str) -> int:
        return self.bus_port_base + BUS_PORT_OFFSETS[name]

    def bus_connect(self, name: str) -> str:
        """Endpoint `name` of the bus at bus_host (a bus's own health check)."""
        return f"tcp://{self.bus_host}:{self.bus_port(name)}"

    def bus_peers(self) -> list[tuple[str, int]]:
        """(host, port base) of every bus an edge or a service connects to."""
        if not self.bus_hosts.strip():
            return [(self.bus_host, self.bus_port_base)]
        peers = []
        for item in filter(None, (each.strip() for each in self.bus_hosts.split(","))):
            host, sep, base = item.rpartition(":")
            if not sep:
                host, base = item, ""
            peers.append((host, int(base) if base else self.bus_port_base))
        return peers

    def bus_bind(self, name: str) -> str:
        return f"tcp://{self.bus_bind_host}:{self.bus_port(name)}"

    def rate(self, action: str) -> Rate | None:
        """The parsed rate of `action` (e.g. "message" reads rate_message)."""
        return parse_rate(getattr(self, f"rate_{action}"))

    def limits(self) -> dict[str, Any]:
        """What the login reply announces to clients."""
        return {
            "max_frame_bytes": self.max_frame_bytes,
            "max_text_chars": self.max_text_chars,
            "history_page_max": self.history_page_max,
            "max_reply_bytes": self.max_reply_bytes,
            "max_inflight": self.max_inflight_per_conn,
            "idle_timeout_s": int(self.idle_timeout_s),
            "max_status_chars": self.max_status_chars,
            "max_pending_friend_requests": self.max_pending_friend_requests,
            "max_blocks": self.max_blocks,
            "avatar_max_bytes": self.avatar_max_bytes,
            "avatar_max_pixels": self.avatar_max_pixels,
            "sync_page_max": self.sync_page_max,
            "edit_window_s": self.edit_window_s,
            "rates": {
                action: rate.describe()
                for action in RATED_ACTIONS
                if (rate := self.rate(action)) is not None
            },
        }


# Each backend service has a ROUTER (edges connect) and a DEALER (replicas connect);
# events go through an XSUB (publishers connect) / XPUB (subscribers connect) pair.
BUS_PORT_OFFSETS = {
    "auth.front": 0,
    "auth.back": 1,
    "social.front": 2,
    "social.back": 3,
    "media.front": 4,
    "media.back": 5,
    "events.in": 6,
    "events.out": 7,
    # Operator ops (chatroom admin) have a path of their own that only the admin key
    # may enter (see chatroom/buskeys.py).
    "auth.admin.front": 8,
    "auth.admin.back": 9,
    "social.admin.front": 10,
    "social.admin.back": 11,
    "media.admin.front": 12,
    "media.admin.back": 13,
}
BACKEND_SERVICES = ("auth", "social", "media")
ADMIN_SERVICES = ("auth", "social", "media")
RATED_ACTIONS = (
    "message",
    "friend_request",
    "avatar",
    "room_create",
    "presence",
    "typing",
    "membership",
    "read",
    "notify",
    "edit",
    "block",
    "moderation",
    "account",
    "export",
    "login_ip",
    "login_failed_account_ip",
    "login_failed_ip",
    "login_failed_account",
    "register_ip",
)
