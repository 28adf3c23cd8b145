"""Mentions and notification levels (issue #17, feature 4): mentions (who was
@mentioned in which room message, by seq) and room_notify (a user's level in a room
when it is not the default "all").

Two new tables; nothing from before the upgrade is a mention. Checks first, like the
revisions before it: a database made by create_all may have them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("mentions"):
        op.create_table(
            "mentions",
            sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("room_id", sa.BigInteger(), nullable=False),
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
            sa.PrimaryKeyConstraint("user_id", "room_id", "seq"),
            mysql_charset="utf8mb4",
            mysql_engine="InnoDB",
        )
        op.create_index("ix_mentions_room_seq", "mentions", ["room_id", "seq"])
    if not inspector.has_table("room_notify"):
        op.create_table(
            "room_notify",
            sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("room_id", sa.BigInteger(), nullable=False),
            sa.Column("level", sa.String(16), nullable=False),
            sa.Column("updated_at", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
            sa.PrimaryKeyConstraint("user_id", "room_id"),
            mysql_charset="utf8mb4",
            mysql_engine="InnoDB",
        )


def downgrade() -> None:
    op.drop_table("room_notify")
    op.drop_index("ix_mentions_room_seq", table_name="mentions")
    op.drop_table("mentions")
