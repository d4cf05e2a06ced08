"""``used_signatures``: signed device requests already acted on, so that each works once.

A state-changing device call (logout, open, revoking a session ...) replayed byte for byte
inside its ±60 s window used to take effect again. Now authz records the signature of each one
it accepts, keyed by (device, SHA-256 of the signature), and a second insert of the same key
is refused by the primary key, across every authz replica on the database. Rows are needed
only until the window ends; authz's hourly housekeeping deletes them after.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "used_signatures",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("signature_hash", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name="fk_used_signatures_device_id_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "signature_hash", name="pk_used_signatures"),
    )
    op.create_index("ix_used_signatures_expires_at", "used_signatures", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_signatures_expires_at", table_name="used_signatures")
    op.drop_table("used_signatures")
