"""Indexes for the session retention job (services/auth/retention.py), which deletes
sessions by when they expired or were logged out.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_expires", "sessions", ["expires_at"], unique=False)
    op.create_index("ix_sessions_revoked", "sessions", ["revoked_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sessions_revoked", table_name="sessions")
    op.drop_index("ix_sessions_expires", table_name="sessions")
