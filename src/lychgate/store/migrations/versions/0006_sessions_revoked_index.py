"""An index for the sessions to end: ``(revoked, expires_at)``.

authz reads the revoked sessions whose tokens could still be valid on every look, once a
second (lychgate.authz.snapshots). Without this index SQLite scanned the whole sessions table
for it: 160 ms a look at 50,000 sessions, against 10 ms with it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_revoked_expires_at", "sessions", ["revoked", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_revoked_expires_at", table_name="sessions")
