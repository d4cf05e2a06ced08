"""The tables, as SQLAlchemy Core metadata.

This is the model the repositories query and the migrations must produce; a test compares the
migrated database against it on both backends. Column names follow the fields of the
dataclasses in :mod:`lychgate.domain`; the repositories map between the two, so nothing
outside :mod:`lychgate.store` ever sees a row.

Constraint names come from a naming convention so that migrations can refer to them and so
that a unique violation names the field it broke (see :mod:`lychgate.store.errors`).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from lychgate.store.columns import UtcDateTime

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID: Final = 64  # length of id columns; ids.new_id makes 22 characters plus a short prefix

metadata = MetaData(naming_convention=NAMING_CONVENTION)

users = Table(
    "users",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=True),
    # The e-mail address in lower case: two addresses that differ only in case are one
    # (lychgate.store.sql.users.email_key), and no two users share one (uq_users_email_key).
    Column("email_key", Text, nullable=True),
    Column("external_id", Text, nullable=True, unique=True),
    Column("is_admin", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The change counter's value at this row's latest write (see config_changes below).
    Column("changed_in", BigInteger, nullable=False, index=True),
    Index("uq_users_email_key", "email_key", unique=True),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("credential_id", LargeBinary, nullable=True, unique=True),
    Column("sign_count", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked", Boolean, nullable=False),
    CheckConstraint("kind IN ('passkey', 'device_key')", name="kind"),
)

apps = Table(
    "apps",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("upstream", Text, nullable=False),
    Column("host", String(255), nullable=True, unique=True),
    Column("policy", String(16), nullable=False),
    Column("websockets", Boolean, nullable=False),
    Column("description", Text, nullable=False),
    Column("icon", Text, nullable=False),
    Column("verify_tls", Boolean, nullable=False),
    Column("connect_timeout", Float, nullable=True),
    Column("read_timeout", Float, nullable=True),
    Column("max_body_bytes", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("allow_cross_origin", Boolean, nullable=False),
    Column("max_header_bytes", Integer, nullable=True),
    Column("max_headers", Integer, nullable=True),
    Column("idle_timeout", Float, nullable=True),
    # The change counter's value at this row's latest write (see config_changes below).
    Column("changed_in", BigInteger, nullable=False, index=True),
    CheckConstraint("policy IN ('any-user', 'admins')", name="policy"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("device_id", ForeignKey("devices.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("user_agent", Text, nullable=False),
    Column("ip", String(64), nullable=False),
    # The sessions to end, read in full when authz's snapshot publisher starts and once a
    # minute after (revocations) ...
    Index("ix_sessions_revoked_expires_at", "revoked", "expires_at"),
    # ... and those revoked since its last look, read on every look (revoked_since).
    Index("ix_sessions_revoked_at", "revoked_at"),
)

login_requests = Table(
    "login_requests",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("number", Integer, nullable=False),
    Column("rd", Text, nullable=False),
    Column("app_slug", String(64), nullable=True),  # no FK: the app may be removed meanwhile
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("user_agent", Text, nullable=False),
    Column("ip", String(64), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("device_id", ForeignKey("devices.id", ondelete="SET NULL"), nullable=True),
    Column("session_id", ForeignKey("sessions.id", ondelete="SET NULL"), nullable=True),
    CheckConstraint(
        "status IN ('pending', 'approved', 'denied', 'expired', 'finished')", name="status"
    ),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("key_hash", LargeBinary, nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked", Boolean, nullable=False),
)

registrations = Table(
    "registrations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("external_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("api_key_id", ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    CheckConstraint("status IN ('pending', 'enrolled', 'expired')", name="status"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(ID), primary_key=True),
    Column("private_jwk", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("retired_at", UtcDateTime, nullable=True),
    Column("verify_until", UtcDateTime, nullable=True),
)

one_time_codes = Table(
    "one_time_codes",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("used_at", UtcDateTime, nullable=True),
)

# One row (id 1): a counter that every write to what the gateways' snapshot is built from
# (users, apps) bumps in the same transaction, so authz can tell in one read whether it must
# rebuild the snapshot (lychgate.authz.snapshots), whichever process made the change.
config_changes = Table(
    "config_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

# Facts about the deployment as a whole, one row each by name: "secrets_fingerprint", the
# one-way hash of the secrets.json every node must share (lychgate.deployment.secrets).
deployment = Table(
    "deployment",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Rate limits shared by every authz process on the database: events counted per (scope, key)
# in fixed windows (lychgate.authz.ratelimit.SharedLimit). The key is a hash of the IP or
# device id; rows of windows long over are swept (lychgate.authz.housekeeping).
rate_counts = Table(
    "rate_counts",
    metadata,
    Column("scope", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("window_start", UtcDateTime, primary_key=True, index=True),
    Column("count", Integer, nullable=False),
)

# Signed device requests already used (lychgate.authz.device.auth): a state-changing device
# call is accepted once, on whichever authz replica, because the second insert of the same
# (device, signature) breaks the primary key. A row is needed only while its signature's
# timestamp is inside the ±60 s window (``expires_at`` is its end); expired rows are swept
# (lychgate.authz.housekeeping).
used_signatures = Table(
    "used_signatures",
    metadata,
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("signature_hash", LargeBinary, primary_key=True),  # SHA-256 of the raw signature
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# No foreign keys: the audit trail outlives the users and devices it mentions.
audit_log = Table(
    "audit_log",
    metadata,
    # BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" auto-increments.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("action", String(64), nullable=False),
    Column("actor_user_id", String(ID), nullable=True, index=True),
    Column("actor_device_id", String(ID), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("details", JSON, nullable=False),
)
