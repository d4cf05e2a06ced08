"""``users.changed_in``: the change counter's value at each user's latest write.

With it authz reads only the users that changed since its last look, not every user, when
the counter moves (lychgate.authz.snapshots). Existing rows start at 0: the first look after
an upgrade reads every user anyway.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite allows NOT NULL with a default), so that offline SQL works too.
    op.add_column(
        "users", sa.Column("changed_in", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_index("ix_users_changed_in", "users", ["changed_in"])


def downgrade() -> None:
    op.drop_index("ix_users_changed_in", table_name="users")
    op.drop_column("users", "changed_in")
