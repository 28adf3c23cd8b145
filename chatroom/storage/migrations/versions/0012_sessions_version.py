"""profiles.sessions_version: counts changes to a user's set of live sessions.

Every session opened or closed writes it, so that two such changes for one user made
on two Galera writers at once touch the same row and conflict at certification (one is
run again) instead of both committing. Galera certifies rows written, not rows locked:
a login on one node that found the user's old session (no presence change, nothing
written to profiles) and the old edge's drop on the other that did not see the new
session (so "offline") both committed, and friends saw a connected user offline
(services/social/store/presence.py). Starts at 0 for existing rows; checked first, like
the revisions before it: a database made by create_all may have it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("profiles")}
    if "sessions_version" not in have:
        op.add_column(
            "profiles",
            sa.Column("sessions_version", sa.BigInteger(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("sessions_version")
