"""Presence versions (issue #18, presence that converges): profiles.presence_version
counts a user's presence changes (online, offline, a new status), so that a client can
tell a stale presence push from a fresh one. Pushes from different replicas can cross
on the way and a push can be sent again after a bus link comes back
(chatroom/event_replay.py); the version orders them. Starts at 0 for existing rows.
Checked first, like the revisions before it: a database made by create_all may have it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("profiles")}
    if "presence_version" not in have:
        op.add_column(
            "profiles",
            sa.Column("presence_version", sa.BigInteger(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("presence_version")
