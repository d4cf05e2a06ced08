"""``apps.changed_in``: the change counter's value at each app's latest write.

With it authz reads only the apps that changed since its last look, not every app, when the
counter moves (lychgate.authz.snapshot_apps): at 5,000 apps reading them all took a fifth of
a second of the second within which an app change must reach the gateways. Existing rows
start at 0: the first look after an upgrade reads every app anyway.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite allows NOT NULL with a default), so that offline SQL works too.
    op.add_column(
        "apps", sa.Column("changed_in", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_index("ix_apps_changed_in", "apps", ["changed_in"])


def downgrade() -> None:
    op.drop_index("ix_apps_changed_in", table_name="apps")
    op.drop_column("apps", "changed_in")
