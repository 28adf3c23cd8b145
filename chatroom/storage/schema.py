"""The database schema, defined once. db/init.sql is generated from it
(``chatroom schema > db/init.sql``) and a test keeps the two equal.

Each service owns its tables and writes only those: auth owns users and sessions;
social owns rooms, room_members and messages; media owns avatars.
Times are integer milliseconds since the epoch (UTC) so both SQLite and MySQL store them
the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

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
    # NFC-normalised, case-folded username: uniqueness is case-insensitive.
    Column("username_key", _binary_string(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
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
    Index("ix_sessions_user", "user_id"),
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
    **MYSQL_TABLE_ARGS,
)

room_members = Table(
    "room_members",
    metadata,
    Column("room_id", BigInteger, ForeignKey("rooms.id"), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("joined_at", BigInteger, nullable=False),
    Index("ix_room_members_user", "user_id"),
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
    # The sender's own id for the message: a retried send with the same client_id
    # returns the stored message instead of storing it twice.
    Column("client_id", String(64), nullable=True),
    UniqueConstraint("room_id", "seq", name="uq_messages_room_seq"),
    UniqueConstraint("sender_id", "client_id", name="uq_messages_sender_client"),
    **MYSQL_TABLE_ARGS,
)

LOBBY = "lobby"
