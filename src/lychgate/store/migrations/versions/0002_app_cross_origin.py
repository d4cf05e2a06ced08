"""Apps: ``allow_cross_origin``, whether other origins may send state-changing requests.

Existing apps get ``false``: the gateway refuses those requests from now on, which is the
safer default (THREAT_MODEL.md T28); an admin re-adds an app that needs them with
``--allow-cross-origin``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite allows NOT NULL with a default), so that offline SQL works too.
    op.add_column(
        "apps",
        sa.Column("allow_cross_origin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("apps", "allow_cross_origin")
