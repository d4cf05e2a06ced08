"""``python -m bench.feed``: what the config feed costs as the number of users grows.

Two tables per run, each timed side by side with what it replaced:

* **authz, one look for changes** (once a second per authz process): when nothing changed
  (the change counter, the sessions to end and the keys), and when one user changed (that
  user's row read and applied to the last snapshot), against a full rebuild (every user read,
  the snapshot built and compared), which is what every look cost before the counter and
  what a look after any user change cost before ``users.changed_in``.
* **a gateway, one change**: parsing and applying a sessions update (a revocation) and a
  users update (one user renamed), against parsing the full snapshot line that carried each
  change before; and the size of each line.

The store is a fresh SQLite file in a temporary directory (``--database-url`` for another).
Timings are medians of ``--repeats`` runs; they vary with the machine, the ratios less so.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher, build_snapshot
from lychgate.config import Settings, load_settings
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets
from lychgate.events import InProcessBus
from lychgate.gateway.feed_wire import (
    SessionsUpdate,
    UsersUpdate,
    parse_line,
    sessions_line,
    snapshot_line,
    users_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.ids import SessionId, UserId, new_id
from lychgate.store import open_store
from lychgate.store.schema import users


@dataclass(frozen=True, slots=True)
class FeedFigures:
    users: int
    look_ms: float  # one look for changes, nothing changed
    user_look_ms: float  # one look after one user changed
    rebuild_ms: float  # one full rebuild and comparison (every look, before)
    sessions_ms: float  # a gateway parsing and applying a sessions update
    users_ms: float  # a gateway parsing and applying a users update (one user)
    snapshot_ms: float  # a gateway parsing a full snapshot line
    sessions_bytes: int
    users_bytes: int
    snapshot_bytes: int


async def _median_ms(step: Callable[[], Awaitable[object]], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _median_ms_sync(step: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _authz_looks(
    count: int,
    url: str,
    repeats: int,
    settings: Settings,
    secrets: DeploymentSecrets,
    now: datetime,
) -> tuple[ConfigSnapshot, float, float, float]:
    """The latest snapshot, then the median ms of a look, of a look after one user changed,
    and of a full rebuild."""
    store = await open_store(url)
    bus = InProcessBus()
    try:
        await ensure_signing_key(store.signing_keys, now)
        rows = [
            {
                "id": new_id("u_"),
                "name": f"User {n}",
                "email": f"user{n}@example.test",
                "external_id": None,
                "is_admin": n == 0,
                "disabled": False,
                "created_at": now,
            }
            for n in range(count)
        ]
        async with store.engine.begin() as conn:  # in one go: the bench, not the repository
            await conn.execute(insert(users), rows)
        ctx = AuthzContext(settings=settings, store=store, bus=bus, secrets=secrets)
        publisher = SnapshotPublisher(ctx)
        await publisher.refresh()
        latest = publisher.latest
        assert latest is not None

        async def rebuild() -> None:
            current = publisher.latest
            assert current is not None
            fresh = await build_snapshot(ctx, serial=current.serial + 1, now=ctx.clock())
            assert fresh.same_content(current)  # and so the incremental looks built it right

        look_ms = await _median_ms(publisher.refresh, repeats)
        renamed = UserId(str(rows[-1]["id"]))
        times = []
        for n in range(repeats):
            await store.users.update(renamed, name=f"Renamed {n}")  # not timed: the write
            started = time.perf_counter()
            assert await publisher.refresh()
            times.append((time.perf_counter() - started) * 1000)
        assert publisher.full_builds == 1  # every look after a change read that user alone
        rebuild_ms = await _median_ms(rebuild, repeats)
        return latest, look_ms, statistics.median(times), rebuild_ms
    finally:
        await bus.close()
        await store.close()


def measure(count: int, *, repeats: int = 5, database_url: str | None = None) -> FeedFigures:
    """The figures for ``count`` users (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:  # files first, then the event loop
        data = Path(tmp)
        settings = load_settings(data, {})
        now = datetime.now(UTC)
        secrets = ensure_secrets(data / "secrets.json", now)[0]
        url = database_url or f"sqlite:///{data / 'bench.db'}"
        latest, look_ms, user_look_ms, rebuild_ms = asyncio.run(
            _authz_looks(count, url, repeats, settings, secrets, now)
        )
    revoked = frozenset({SessionId(new_id("s_"))})
    after = latest.with_sessions(
        serial=latest.serial + 1, issued_at=latest.issued_at, revoked_sessions=revoked
    )
    some_user = next(iter(latest.users))
    renamed = latest.with_users(
        serial=latest.serial + 1,
        issued_at=latest.issued_at,
        setup_done=latest.setup_done,
        users={**latest.users, some_user: UserProfile(name="Renamed")},
        revoked_sessions=latest.revoked_sessions,
    )
    sessions = sessions_line(latest, after, changes=True).rstrip(b"\n")
    users_changed = users_line(latest, renamed, changes=True).rstrip(b"\n")
    full = snapshot_line(after).rstrip(b"\n")

    def apply(line: bytes) -> Callable[[], object]:
        def step() -> object:
            message = parse_line(line)
            assert isinstance(message, SessionsUpdate | UsersUpdate)
            return message.apply(latest)

        return step

    return FeedFigures(
        users=count,
        look_ms=look_ms,
        user_look_ms=user_look_ms,
        rebuild_ms=rebuild_ms,
        sessions_ms=_median_ms_sync(apply(sessions), repeats),
        users_ms=_median_ms_sync(apply(users_changed), repeats),
        snapshot_ms=_median_ms_sync(lambda: parse_line(full), repeats),
        sessions_bytes=len(sessions),
        users_bytes=len(users_changed),
        snapshot_bytes=len(full),
    )


def table(rows: Sequence[FeedFigures]) -> str:
    lines = [
        "authz, one look for changes:",
        "",
        "| users | nothing changed | one user changed | full rebuild (before) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.users:,} | {r.look_ms:.1f} ms | {r.user_look_ms:.1f} ms | {r.rebuild_ms:.1f} ms |"
        for r in rows
    ]
    lines += [
        "",
        "a gateway, one change (parse and apply; the line's size):",
        "",
        "| users | sessions update | users update (one user) | full snapshot (before) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.users:,} | {r.sessions_ms:.2f} ms, {r.sessions_bytes / 1000:.1f} kB | "
        f"{r.users_ms:.2f} ms, {r.users_bytes / 1000:.1f} kB | "
        f"{r.snapshot_ms:.1f} ms, {r.snapshot_bytes / 1000:.0f} kB |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.feed", description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--database-url", help="default: a fresh SQLite file")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.users) or args.repeats < 1:
        p.error("--users and --repeats must be positive")

    rows = [measure(n, repeats=args.repeats, database_url=args.database_url) for n in args.users]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
