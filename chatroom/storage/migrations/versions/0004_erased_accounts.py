"""Erased accounts (chatroom admin erase): users.erased_at.

An erased account keeps its row as a tombstone (the author of the messages others
received, shown as "deleted user"; its name key stays taken), marked by erased_at.
Checks first, like the revisions before it: a database made by create_all may have it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}
    if "erased_at" not in columns:
        op.add_column("users", sa.Column("erased_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "erased_at")
