"""One user per e-mail address: ``users.email_key`` (the address in lower case), unique.

Before this, ``lychgate user add`` looked the address up and then inserted: two adds at once
both got in, and ``frank@example.com`` and ``FRANK@example.com`` were two users, although a
sign-in or a ``lychgate user disable`` by address finds only one of them. Now the database
refuses the second (a Conflict), and a lookup by address ignores case.

A database that already holds two users with the same address (ignoring case) cannot take the
index: the upgrade stops before changing anything, naming the addresses and their users, so
the operator decides which user keeps each one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from lychgate.errors import StoreError

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_LEAVE_ONE = (
    "Leave each address to one user, e.g. `UPDATE users SET email = NULL WHERE id = "
    "'<user id>'` for the others, then start Lychgate again"
)
_USERS = sa.table("users", sa.column("id", sa.String), sa.column("email", sa.Text))


def upgrade() -> None:
    if op.get_context().as_sql:
        # No rows to read: SQL's lower() (ASCII only on SQLite) stands in for str.lower().
        op.add_column("users", sa.Column("email_key", sa.Text(), nullable=True))
        op.execute("UPDATE users SET email_key = lower(email)")
    else:
        keys = _email_keys(op.get_bind())
        op.add_column("users", sa.Column("email_key", sa.Text(), nullable=True))
        if keys:
            op.get_bind().execute(
                sa.text("UPDATE users SET email_key = :key WHERE id = :id"),
                [{"id": user_id, "key": key} for user_id, key in keys.items()],
            )
    op.drop_index("ix_users_email", table_name="users")
    op.create_index("uq_users_email_key", "users", ["email_key"], unique=True)


def _email_keys(conn: sa.Connection) -> dict[str, str]:
    """Each user's address in lower case, by user id; StoreError naming any that is shared."""
    rows = conn.execute(
        sa.select(_USERS.c.id, _USERS.c.email)
        .where(_USERS.c.email.is_not(None))
        .order_by(_USERS.c.id)
    ).all()
    owners: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for user_id, email in rows:
        owners[email.lower()].append((user_id, email))
    shared = {key: found for key, found in owners.items() if len(found) > 1}
    if shared:
        listed = "; ".join(
            ", ".join(f"{email} ({user_id})" for user_id, email in found)
            for found in shared.values()
        )
        raise StoreError(
            "cannot upgrade the database: e-mail addresses must now belong to one user each "
            f"(ignoring case), and these are shared: {listed}. {_LEAVE_ONE}",
            field="database_url",
        )
    return {user_id: key for key, found in owners.items() for user_id, _ in found}


def downgrade() -> None:
    op.drop_index("uq_users_email_key", table_name="users")
    op.create_index("ix_users_email", "users", ["email"])
    op.drop_column("users", "email_key")
