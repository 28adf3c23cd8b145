"""Device names (issue #17, feature 7): sessions.device, what the user called the
device at login (chatroom/devices.py), listed by account.sessions; null for sessions
made before (and logins that give none). Checked first, like the revisions before it: a
database made by create_all may have it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# chatroom.protocol.DEVICE_MAX_CHARS when this revision was written (a revision keeps
# its own numbers: a later change of the constant needs a revision of its own).
DEVICE_MAX_CHARS = 64


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sessions")}
    if "device" not in have:
        op.add_column("sessions", sa.Column("device", sa.String(DEVICE_MAX_CHARS), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("device")
