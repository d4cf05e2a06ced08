"""``deployment``: facts about the deployment as a whole, one row each by name.

The first is ``secrets_fingerprint``, a one-way hash of the secrets.json every node must
share: a node whose file differs (copied wrongly by hand, or edited) used to start and serve
other assertion keys than its peers, and apps saw ``unknown_kid`` depending on the replica.
Now ``lychgate init`` and authz compare their file with it at start. A database upgraded from
0007 holds none yet; the first node that starts records its own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_deployment"),
    )


def downgrade() -> None:
    op.drop_table("deployment")
