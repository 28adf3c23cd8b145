"""Read markers and read receipts (issue #17, feature 1): read_markers (how far each user
has read each conversation) and read_receipts (who shares their markers in direct chats).

Two new tables, and markers for what existed before (at each conversation's last
message: nothing from before the upgrade shows as unread).
Checks first, like the revisions before it: a database made by create_all may have them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
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
        # What was there before the upgrade counts as read: without a marker every
        # user would find the lobby "999+" and every direct chat unread from its start.
        now = int(time.time() * 1000)
        bind.execute(
            sa.text(
                "INSERT INTO read_markers (user_id, room_id, seq, updated_at)"
                " SELECT m.user_id, m.room_id, r.last_seq, :now"
                " FROM room_members m JOIN rooms r ON r.id = m.room_id"
            ),
            {"now": now},
        )
        bind.execute(
            sa.text(
                "INSERT INTO read_markers (user_id, room_id, seq, updated_at)"
                " SELECT u.id, r.id, r.last_seq, :now FROM users u, rooms r"
                " WHERE r.kind = 'public' AND NOT EXISTS (SELECT 1 FROM read_markers x"
                " WHERE x.user_id = u.id AND x.room_id = r.id)"
            ),
            {"now": now},
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
