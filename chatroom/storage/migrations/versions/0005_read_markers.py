"""Read markers and read receipts (issue #17, feature 1): read_markers (how far each user
has read each conversation) and read_receipts (who shares their markers in direct chats).

Two new tables and nothing else, so this revision can be re-chained after any other.
Checks first, like the revisions before it: a database made by create_all may have them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("read_markers"):
        op.create_table(
            "read_markers",
            sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("room_id", sa.BigInteger(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("updated_at", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
            sa.PrimaryKeyConstraint("user_id", "room_id"),
            mysql_charset="utf8mb4",
            mysql_engine="InnoDB",
        )
    if not inspector.has_table("read_receipts"):
        op.create_table(
            "read_receipts",
            sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("since", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("user_id"),
            mysql_charset="utf8mb4",
            mysql_engine="InnoDB",
        )


def downgrade() -> None:
    op.drop_table("read_receipts")
    op.drop_table("read_markers")
