"""The initial schema.

Written by hand to match lychgate.store.schema on SQLite and PostgreSQL; the store tests
compare the migrated database against that metadata on both. Timestamps are
``DateTime(timezone=True)``: ``timestamptz`` on PostgreSQL, ISO-8601 UTC text on SQLite.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = 64


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id(name: str = "id") -> sa.Column[object]:
    return sa.Column(name, sa.String(ID), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("external_id", name="uq_users_external_id"),
    )
    op.create_index("ix_users_email", "users", ["email"])

    op.create_table(
        "devices",
        _id(),
        _id("user_id"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_devices_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("credential_id", name="uq_devices_credential_id"),
        sa.CheckConstraint("kind IN ('passkey', 'device_key')", name="ck_devices_kind"),
    )
    op.create_index("ix_devices_user_id", "devices", ["user_id"])

    op.create_table(
        "apps",
        _id(),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("upstream", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("websockets", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("icon", sa.Text(), nullable=False),
        sa.Column("verify_tls", sa.Boolean(), nullable=False),
        sa.Column("connect_timeout", sa.Float(), nullable=True),
        sa.Column("read_timeout", sa.Float(), nullable=True),
        sa.Column("max_body_bytes", sa.BigInteger(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_apps"),
        sa.UniqueConstraint("slug", name="uq_apps_slug"),
        sa.UniqueConstraint("host", name="uq_apps_host"),
        sa.CheckConstraint("policy IN ('any-user', 'admins')", name="ck_apps_policy"),
    )

    op.create_table(
        "sessions",
        _id(),
        _id("user_id"),
        sa.Column("device_id", sa.String(ID), nullable=True),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("last_seen_at"),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        _ts("revoked_at", nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name="fk_sessions_device_id_devices",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])

    op.create_table(
        "login_requests",
        _id(),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("rd", sa.Text(), nullable=False),
        sa.Column("app_slug", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(ID), nullable=True),
        sa.Column("device_id", sa.String(ID), nullable=True),
        sa.Column("session_id", sa.String(ID), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_login_requests"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_login_requests_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name="fk_login_requests_device_id_devices",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_login_requests_session_id_sessions",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'denied', 'expired', 'finished')",
            name="ck_login_requests_status",
        ),
    )
    op.create_index("ix_login_requests_expires_at", "login_requests", ["expires_at"])

    op.create_table(
        "api_keys",
        _id(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )

    op.create_table(
        "registrations",
        _id(),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        sa.Column("api_key_id", sa.String(ID), nullable=True),
        sa.Column("user_id", sa.String(ID), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_registrations"),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name="fk_registrations_api_key_id_api_keys",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_registrations_user_id_users", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("token_hash", name="uq_registrations_token_hash"),
        sa.CheckConstraint(
            "status IN ('pending', 'enrolled', 'expired')", name="ck_registrations_status"
        ),
    )

    op.create_table(
        "signing_keys",
        _id("kid"),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("retired_at", nullable=True),
        _ts("verify_until", nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )

    op.create_table(
        "one_time_codes",
        sa.Column("code_hash", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_one_time_codes"),
    )
    op.create_index("ix_one_time_codes_expires_at", "one_time_codes", ["expires_at"])

    op.create_table(
        "audit_log",
        # INTEGER PRIMARY KEY is SQLite's auto-increment; BIGSERIAL-like identity on PostgreSQL.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        _ts("at"),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor_user_id", sa.String(ID), nullable=True),
        sa.Column("actor_device_id", sa.String(ID), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_actor_user_id", "audit_log", ["actor_user_id"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "one_time_codes",
        "signing_keys",
        "registrations",
        "api_keys",
        "login_requests",
        "sessions",
        "apps",
        "devices",
        "users",
    ):
        op.drop_table(table)
