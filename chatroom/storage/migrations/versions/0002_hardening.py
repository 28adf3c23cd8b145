"""Hardening round (issue #14): last_seen, byte-exact client ids per conversation, NFKC
name keys.

- last_seen: when each user was last online (shown to friends).
- messages.client_id compares byte for byte on MySQL (utf8mb4_bin; its default
  collation made 'Ab' and 'ab', two different sends, one), and is unique per
  (sender, room) instead of per sender (a client_id reused in another conversation
  acknowledged the wrong message).
- users.username_key and rooms.name_key become NFKC case-folded (were NFC): 'Ａｌｉｃｅ'
  and 'alice' are one name. The key rule is copied here, not imported, so this
  revision keeps meaning what it meant when later code changes the rule. A name whose
  new key would collide with an existing one, or outgrow its column, keeps its old key
  (it stays usable; the operator is told which, in the log).

Every step checks first: a database created by create_all before migrations existed
may already have any of these (see migrate.py on unversioned databases).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op
from loguru import logger
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEY_CHARS = 64  # width of users.username_key and rooms.name_key
OLD_CLIENT_UNIQUE = "uq_messages_sender_client"
NEW_CLIENT_UNIQUE = "uq_messages_sender_room_client"


def nfkc_key(name: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name.strip()).casefold())


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("last_seen"):
        op.create_table(
            "last_seen",
            sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("ts", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("user_id"),
            mysql_charset="utf8mb4",
            mysql_engine="InnoDB",
        )
    uniques = {u["name"] for u in inspector.get_unique_constraints("messages")}
    if OLD_CLIENT_UNIQUE in uniques:
        _client_id_per_conversation(bind.dialect.name)
    _rekey(bind, "users", "username", "username_key", sa.true())
    _rekey(bind, "rooms", "name", "name_key", sa.column("kind") != "direct")


def _client_id_per_conversation(dialect: str) -> None:
    if dialect == "sqlite":
        # SQLite drops a table constraint only by copying the table.
        with op.batch_alter_table("messages", recreate="always") as batch:
            batch.drop_constraint(OLD_CLIENT_UNIQUE, type_="unique")
            batch.create_unique_constraint(NEW_CLIENT_UNIQUE, ["sender_id", "room_id", "client_id"])
        return
    # Binary is finer than the old collation, so the old unique rows stay unique.
    op.alter_column(
        "messages",
        "client_id",
        existing_nullable=True,
        type_=mysql.VARCHAR(64, charset="utf8mb4", collation="utf8mb4_bin"),
    )
    op.create_unique_constraint(
        NEW_CLIENT_UNIQUE, "messages", ["sender_id", "room_id", "client_id"]
    )
    op.drop_constraint(OLD_CLIENT_UNIQUE, "messages", type_="unique")


def _rekey(bind: sa.Connection, table: str, name_col: str, key_col: str, which) -> None:  # noqa: ANN001
    rows = sa.table(table, sa.column("id"), sa.column(name_col), sa.column(key_col))
    found = bind.execute(
        sa.select(rows.c.id, rows.c[name_col], rows.c[key_col]).where(which).order_by(rows.c.id)
    ).all()
    taken = {key for _id, _name, key in found}
    changed = kept = 0
    for row_id, name, old_key in found:
        new_key = nfkc_key(name)
        if new_key == old_key:
            continue
        if new_key in taken or len(new_key) > KEY_CHARS:
            # The older row keeps the name: ids ascend, so it was looked at first.
            logger.warning(
                "{} {} keeps its old name key: its NFKC key {!r} {}",
                table,
                row_id,
                new_key,
                "belongs to another row" if new_key in taken else "is too long",
            )
            kept += 1
            continue
        bind.execute(sa.update(rows).where(rows.c.id == row_id).values({key_col: new_key}))
        taken.discard(old_key)
        taken.add(new_key)
        changed += 1
    if changed or kept:
        logger.info("{}: {} name keys now NFKC, {} kept their old key", table, changed, kept)


def downgrade() -> None:
    raise NotImplementedError(
        "0002 rewrote name keys in place: restore the backup taken before the upgrade"
    )
