"""authz reads the sessions to end once a second: on SQLite that read must not scan the table.

Without an index on ``(revoked, expires_at)`` SQLite walked every session along its primary
key, 160 ms a look at 50,000 sessions (2026-11-30 review); with it, a range of the index.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy.dialects import sqlite

from fixtures.store import T0
from lychgate.store import open_store
from lychgate.store.sql.sessions import revoked_ids_query


def _plan(db: Path, sql: str) -> str:
    with sqlite3.connect(db) as conn:
        return " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))


async def test_the_sessions_to_end_are_read_from_an_index(tmp_path: Path) -> None:
    db = tmp_path / "lychgate.db"
    async with await open_store(f"sqlite:///{db}"):  # migrated to the head
        pass
    query = revoked_ids_query(T0).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    plan = await asyncio.to_thread(_plan, db, str(query))
    assert "USING INDEX ix_sessions_revoked_expires_at" in plan, plan
    assert "SCAN sessions" not in plan
