"""Private rooms and moderation (issue #17, feature 6).

rooms: visibility ("public" or "private"), topic, announce (only moderators post),
deleted_at. room_members: role ("owner", "moderator", "member"); the creator of each
existing group room becomes its owner, everyone else a member. Two new tables:
room_bans (who may not join, read or post) and room_audit (every moderation action).
Checks first, like the revisions before it: a database made by create_all may have them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ROOM_COLUMNS: tuple[tuple[str, Callable[[], sa.Column]], ...] = (
    (
        "visibility",
        lambda: sa.Column("visibility", sa.String(8), nullable=False, server_default="public"),
    ),
    ("topic", lambda: sa.Column("topic", sa.String(200), nullable=False, server_default="")),
    ("announce", lambda: sa.Column("announce", sa.Boolean(), nullable=False, server_default="0")),
    ("deleted_at", lambda: sa.Column("deleted_at", sa.BigInteger(), nullable=True)),
)
TABLE_ARGS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    have = {c["name"] for c in inspector.get_columns("rooms")}
    for name, column in ROOM_COLUMNS:
        if name not in have:
            op.add_column("rooms", column())
    if "role" not in {c["name"] for c in inspector.get_columns("room_members")}:
        op.add_column(
            "room_members",
            sa.Column("role", sa.String(16), nullable=False, server_default="member"),
        )
        # Each group room's creator owns it (a room whose creator left has no owner
        # until the operator names one: `chatroom admin room role`).
        bind.execute(
            sa.text(
                "UPDATE room_members SET role = 'owner' WHERE EXISTS (SELECT 1 FROM rooms r"
                " WHERE r.id = room_members.room_id AND r.kind = 'group'"
                " AND r.created_by = room_members.user_id)"
            )
        )
    if not inspector.has_table("room_bans"):
        op.create_table(
            "room_bans",
            sa.Column("room_id", sa.BigInteger(), nullable=False),
            sa.Column("user_id", sa.BigInteger(), nullable=False),
            sa.Column("banned_by", sa.BigInteger(), nullable=True),
            sa.Column("at", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(["room_id"], ["rooms.id"]),
            sa.PrimaryKeyConstraint("room_id", "user_id"),
            **TABLE_ARGS,
        )
    if not inspector.has_table("room_audit"):
        op.create_table(
            "room_audit",
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=False,
                autoincrement=True,
            ),
            sa.Column("room_id", sa.BigInteger(), nullable=False),
            sa.Column("actor_id", sa.BigInteger(), nullable=True),
            sa.Column("action", sa.String(16), nullable=False),
            sa.Column("target_id", sa.BigInteger(), nullable=True),
            sa.Column("detail", sa.String(200), nullable=False, server_default=""),
            sa.Column("at", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            **TABLE_ARGS,
        )
        op.create_index("ix_room_audit_room", "room_audit", ["room_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_room_audit_room", table_name="room_audit")
    op.drop_table("room_audit")
    op.drop_table("room_bans")
    with op.batch_alter_table("room_members") as batch:
        batch.drop_column("role")
    with op.batch_alter_table("rooms") as batch:
        for name, _ in reversed(ROOM_COLUMNS):
            batch.drop_column(name)
