"""authz reads the sessions to end twice a second: on SQLite no read may scan the table.

Without an index on ``(revoked, expires_at)`` SQLite walked every session along its primary
key, 160 ms a look at 50,000 sessions (2026-11-30 review); with it, a range of the index.
Since then a look reads only the sessions revoked since the last one, a range of
``ix_sessions_revoked_at`` (without it, 44 ms a look at 50,000 revoked sessions, 2026-12-01),
and the full reads go a page at a time along the index they range over, so that a page costs
a short walk, not a sort of every row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Select
from sqlalchemy.dialects import sqlite

from fixtures.store import T0
from lychgate.ids import SessionId
from lychgate.store import Revocation, SessionEnd, open_store
from lychgate.store.sql.sessions import (
    endings_query,
    revocations_query,
    revoked_ids_query,
    revoked_since_query,
)

END = SessionEnd(SessionId("s_last"), T0 + timedelta(hours=1))
REVOKED = Revocation(SessionId("s_last"), T0 + timedelta(hours=1), T0 + timedelta(seconds=1))


def _plan(db: Path, sql: str) -> str:
    with sqlite3.connect(db) as conn:
        return " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (revoked_ids_query(T0), "ix_sessions_revoked_expires_at"),
        (revocations_query(T0), "ix_sessions_revoked_expires_at"),
        (revocations_query(T0, after=END), "ix_sessions_revoked_expires_at"),
        (revoked_since_query(T0), "ix_sessions_revoked_at"),
        (revoked_since_query(T0, after=REVOKED), "ix_sessions_revoked_at"),
        (endings_query(T0, T0 + timedelta(hours=2)), "ix_sessions_expires_at"),
        (endings_query(T0, T0 + timedelta(hours=2), after=END), "ix_sessions_expires_at"),
    ],
    ids=[
        "revoked_ids",
        "revocations",
        "revocations-next-page",
        "revoked_since",
        "revoked_since-next-page",
        "endings",
        "endings-next-page",
    ],
)
async def test_the_sessions_to_end_are_read_from_an_index(
    tmp_path: Path, query: Select[tuple[object, ...]], index: str
) -> None:
    db = tmp_path / "lychgate.db"
    async with await open_store(f"sqlite:///{db}"):  # migrated to the head
        pass
    sql = query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    plan = await asyncio.to_thread(_plan, db, str(sql))
    assert f"USING INDEX {index}" in plan, plan
    assert "SCAN sessions" not in plan
