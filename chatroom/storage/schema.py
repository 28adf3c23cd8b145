"""The database schema, defined once. db/init.sql is generated from it
(``chatroom schema > db/init.sql``) and a test keeps the two equal.

Each service owns its tables and writes only those: auth owns users, sessions and
rate_buckets; social owns rooms, room_members, room_bans, room_audit, messages,
friendships, friend_requests, profiles, edges, live_sessions, last_seen, read_markers,
read_receipts, blocks, mentions and room_notify; media owns avatars and avatar_images.
Services may read other services' tables (social shows avatar hashes, media finds who
to tell of a change).
Times are integer milliseconds since the epoch (UTC) so both SQLite and MySQL store them
the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

from chatroom.protocol import DEVICE_MAX_CHARS

metadata = MetaData()

MYSQL_TABLE_ARGS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

# SQLite's INTEGER PRIMARY KEY is its rowid alias; BIGINT would not autoincrement there.
Id = BigInteger().with_variant(Integer(), "sqlite")


def _binary_string(length: int) -> String:
    """A string compared byte for byte in MySQL (its default collation folds case and
    accents, which would make 'josé' and 'jose' collide); SQLite compares bytes anyway."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    # NFKC case-folded username (chatroom.names.name_key): uniqueness ignores case
    # and width; at most 64 characters once folded (check_username refuses longer).
    Column("username_key", _binary_string(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    # Set when an operator erases the account (chatroom admin erase): from then on it
    # does not exist for logins, lookups and operator commands. The row stays as a
    # tombstone: the author of the messages it wrote, shown as "deleted user", and its
    # username_key keeps the name from being registered again (docs/operations.md).
    Column("erased_at", BigInteger, nullable=True),
    **MYSQL_TABLE_ARGS,
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    # SHA-256 of the resume token; the token itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("ip", String(45), nullable=False),
    # What the user called the device at login (chatroom/devices.py); null: not given.
    Column("device", String(DEVICE_MAX_CHARS), nullable=True),
    Index("ix_sessions_user", "user_id"),
    # The retention job (services/auth/retention.py) deletes by these.
    Index("ix_sessions_expires", "expires_at"),
    Index("ix_sessions_revoked", "revoked_at"),
    **MYSQL_TABLE_ARGS,
)

# Token buckets that every auth replica must share (failed logins per account and per
# IP, registrations per IP): see chatroom/ratelimit.py.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    # e.g. "login-failed-ip:203.0.113.9" or "login-failed-user:alice"
    Column("bucket", _binary_string(200), primary_key=True),
    Column("tokens", Double, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_rate_buckets_updated", "updated_at"),
    **MYSQL_TABLE_ARGS,
)

rooms = Table(
    "rooms",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("name_key", _binary_string(64), nullable=False, unique=True),
    # "public": everyone is a member (the lobby); "group": explicit members.
    Column("kind", String(16), nullable=False),
    Column("created_by", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # Sequence of the room's last message. Senders increment it under a row lock, so a
    # message's seq is committed in seq order and a sync cursor never skips one.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # Moderation (migration 0008): "public" (listed, anyone may join) or "private"
    # (invisible to non-members, joined by invitation); the topic; announcement mode
    # (only moderators and owners post); when its owner deleted it (its name stays
    # taken: every replica remembers a room's identity by name).
    Column("visibility", String(8), nullable=False, server_default="public"),
    Column("topic", String(200), nullable=False, server_default=""),
    Column("announce", Boolean, nullable=False, server_default="0"),
    Column("deleted_at", BigInteger, nullable=True),
    **MYSQL_TABLE_ARGS,
)

room_members = Table(
    "room_members",
    metadata,
    Column("room_id", BigInteger, ForeignKey("rooms.id"), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("joined_at", BigInteger, nullable=False),
    # "owner", "moderator" or "member" (migration 0008). The lobby has rows only for
    # its moderators (everyone is its member; its owner is the operator).
    Column("role", String(16), nullable=False, server_default="member"),
    Index("ix_room_members_user", "user_id"),
    **MYSQL_TABLE_ARGS,
)

# Who may not join, read or post in a room (room.ban; lifted by room.unban).
room_bans = Table(
    "room_bans",
    metadata,
    Column("room_id", BigInteger, ForeignKey("rooms.id"), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("banned_by", BigInteger, nullable=True),  # None: the operator
    Column("at", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# Every moderation action (room.invite/kick/ban/unban/set_role/update/delete and the
# operator's `chatroom admin room ...`), for `chatroom admin audit ROOM`. Kept when a
# room is deleted.
room_audit = Table(
    "room_audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("room_id", BigInteger, nullable=False),
    Column("actor_id", BigInteger, nullable=True),  # None: the operator
    Column("action", String(16), nullable=False),
    Column("target_id", BigInteger, nullable=True),
    Column("detail", String(200), nullable=False, server_default=""),
    Column("at", BigInteger, nullable=False),
    Index("ix_room_audit_room", "room_id", "id"),
    **MYSQL_TABLE_ARGS,
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("room_id", BigInteger, ForeignKey("rooms.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("text", Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # The sender's own id for the message: a retried send with the same client_id to
    # the same conversation returns the stored message instead of storing it twice.
    # Compared byte for byte: 'a1' and 'A1' are two messages.
    Column("client_id", _binary_string(64), nullable=True),
    # What the row is (migration 0006): "message", or a change to an earlier message of
    # the conversation, "edit" or "delete", with that message's id in target_id. A change
    # is a row of its own with the next seq, so sync replays it; its text is empty (the
    # new text is in the target row).
    Column("kind", String(8), nullable=False, server_default="message"),
    Column("target_id", BigInteger, nullable=True),
    # The message (same conversation, kind "message") this one answers.
    Column("reply_to", BigInteger, nullable=True),
    # A message's last edit; its deletion (text cleared in the same transaction).
    Column("edited_at", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    UniqueConstraint("room_id", "seq", name="uq_messages_room_seq"),
    UniqueConstraint("sender_id", "room_id", "client_id", name="uq_messages_sender_room_client"),
    **MYSQL_TABLE_ARGS,
)

friendships = Table(
    "friendships",
    metadata,
    # Stored in both directions so "my friends" is one indexed lookup.
    Column("user_id", BigInteger, primary_key=True),
    Column("friend_id", BigInteger, primary_key=True),
    Column("since", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

friend_requests = Table(
    "friend_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("from_id", BigInteger, nullable=False),
    Column("to_id", BigInteger, nullable=False),
    # pending, accepted or rejected. Asking again after a rejection re-opens the row.
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    # False while a rejection has not reached the requester (told at next login).
    Column("requester_told", Boolean, nullable=False, default=True),
    UniqueConstraint("from_id", "to_id", name="uq_friend_requests_pair"),
    Index("ix_friend_requests_to", "to_id", "status"),
    **MYSQL_TABLE_ARGS,
)

profiles = Table(
    "profiles",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("status", String(140), nullable=False, default=""),
    Column("updated_at", BigInteger, nullable=False),
    # Counts the user's presence changes (store/presence.py): pushes carry it so that a
    # client keeps the newest when two cross or one is sent again.
    Column("presence_version", BigInteger, nullable=False, server_default="0"),
    # Counts changes to the user's live sessions. Written by every open and close so
    # that two made at once on two Galera writers conflict (migration 0012).
    Column("sessions_version", BigInteger, nullable=False, server_default="0"),
    **MYSQL_TABLE_ARGS,
)

edges = Table(
    "edges",
    metadata,
    Column("edge_id", String(128), primary_key=True),
    Column("last_seen", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

live_sessions = Table(
    "live_sessions",
    metadata,
    # One row per logged-in connection; a user is online while they have one.
    Column("conn_id", String(160), primary_key=True),
    Column("edge_id", String(128), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Index("ix_live_sessions_user", "user_id"),
    Index("ix_live_sessions_edge", "edge_id"),
    **MYSQL_TABLE_ARGS,
)

last_seen = Table(
    "last_seen",
    metadata,
    # When the user's last live session closed (ms), shown to friends while they are
    # offline. A table of its own rather than a column of profiles: services create
    # missing tables at start, and there are no migrations for new columns (yet).
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# How far each user has read each conversation (read.mark): the seq of the last message
# they have seen there, moved forward only. No row: nothing read (seq 0).
read_markers = Table(
    "read_markers",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("room_id", BigInteger, ForeignKey("rooms.id"), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# Users who share their read markers in direct chats (read.receipts on); a chat's two
# users see each other's marker only when both have a row here.
read_receipts = Table(
    "read_receipts",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("since", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

# Who blocked whom (block.add): the blocker no longer hears the blocked user's room
# messages, gets no friend request or direct message from them, and shows them nothing
# of their presence, status or avatar (docs/security.md, Blocking). One row per pair and
# direction; by blocked_id too, for "who blocks this viewer" (room.members, media).
blocks = Table(
    "blocks",
    metadata,
    Column("blocker_id", BigInteger, primary_key=True, autoincrement=False),
    Column("blocked_id", BigInteger, primary_key=True, autoincrement=False),
    Column("since", BigInteger, nullable=False),
    Index("ix_blocks_blocked", "blocked_id"),
    **MYSQL_TABLE_ARGS,
)

# Who was @mentioned where (issue #17, feature 4): a row per mentioned member and room
# message, written with the message. Unread mentions are counted like unread messages:
# the rows after the user's read marker, a range of the primary key. A deleted message's
# rows go with its text (by the room_id, seq index).
mentions = Table(
    "mentions",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("room_id", BigInteger, ForeignKey("rooms.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Index("ix_mentions_room_seq", "room_id", "seq"),
    **MYSQL_TABLE_ARGS,
)

# A user's notification level in a room (room.notify) when it is not the default "all":
# "mentions" or "none". Setting "all" again removes the row.
room_notify = Table(
    "room_notify",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("room_id", BigInteger, ForeignKey("rooms.id"), primary_key=True),
    Column("level", String(16), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

avatars = Table(
    "avatars",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

avatar_images = Table(
    "avatar_images",
    metadata,
    # Content-addressed: hash is the SHA-256 of the largest normalised PNG.
    Column("hash", String(64), primary_key=True),
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column(
        "data",
        LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"),
        nullable=False,
    ),
    Column("created_at", BigInteger, nullable=False),
    **MYSQL_TABLE_ARGS,
)

LOBBY = "lobby"
