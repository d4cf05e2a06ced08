"""Apps: ``max_header_bytes``, ``max_headers`` and ``idle_timeout``, their own request limits.

All three are nullable: existing apps get NULL, which means the listener's limits, exactly what
they had before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable, no default), so that offline SQL works too.
    op.add_column("apps", sa.Column("max_header_bytes", sa.Integer(), nullable=True))
    op.add_column("apps", sa.Column("max_headers", sa.Integer(), nullable=True))
    op.add_column("apps", sa.Column("idle_timeout", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("apps", "idle_timeout")
    op.drop_column("apps", "max_headers")
    op.drop_column("apps", "max_header_bytes")
