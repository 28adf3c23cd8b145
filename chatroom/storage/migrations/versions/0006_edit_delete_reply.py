"""Edit, delete, reply (issue #17, feature 2): five columns of messages.

kind ("message", "edit" or "delete"; existing rows are messages), target_id (the
message an edit or delete changes), reply_to (the message a message answers),
edited_at and deleted_at. Checks first, like the revisions before it: a database made
by create_all may have them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("kind", lambda: sa.Column("kind", sa.String(8), nullable=False, server_default="message")),
    ("target_id", lambda: sa.Column("target_id", sa.BigInteger(), nullable=True)),
    ("reply_to", lambda: sa.Column("reply_to", sa.BigInteger(), nullable=True)),
    ("edited_at", lambda: sa.Column("edited_at", sa.BigInteger(), nullable=True)),
    ("deleted_at", lambda: sa.Column("deleted_at", sa.BigInteger(), nullable=True)),
)


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("messages")}
    for name, column in COLUMNS:
        if name not in have:
            op.add_column("messages", column())


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
