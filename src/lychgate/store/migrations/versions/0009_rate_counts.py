"""``rate_counts``: rate limits shared by every authz replica on the database.

Each authz counted login requests, approvals and failed enrollments in its own memory, so a
cluster of N replicas behind a load balancer allowed N times each limit. Now every replica adds
to one counter per (scope, key, window) as well.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rate_counts",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "window_start", name="pk_rate_counts"),
    )
    op.create_index("ix_rate_counts_window_start", "rate_counts", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_counts_window_start", table_name="rate_counts")
    op.drop_table("rate_counts")
