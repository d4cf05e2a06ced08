"""Building the gateways' config snapshot from the store, and publishing it on change.

Theory of operation
-------------------
One :class:`SnapshotPublisher` per authz process builds a :class:`ConfigSnapshot` from the
store, and every feed connection reads from it, so N gateways cost one set of queries. It
looks when the event bus says something changed (a revocation, an app edit made through
authz) and every ``poll_interval`` seconds: edits made by the CLI in another process, or by
another authz replica on SQLite, reach gateways within that interval. A new snapshot is
published only when its content differs from the last one.

A look costs a few small reads, not a read of every user or every revoked session: the
store's change counter (every write to users or apps bumps it, in the same transaction,
whichever process makes it), the sessions revoked or ended since the last look (ranges of two
indexes: :mod:`.sessions_to_end`) and the signing keys. When the counter has not moved, the
last snapshot gets the new revoked set and keys, if they differ. When it has, the look also
reads the apps, and the users whose rows changed since the counter value it last saw (each
user write records the value it moved the counter to, ``users.changed_in``), and applies
those to the last snapshot's users: a user enrolled or disabled costs one row, not ten
thousand. As a safety net against a writer that does not bump (an older replica during an
upgrade) or whose revocations are stamped too far in the past (its clock is behind), a full
rebuild also runs every ``full_every`` seconds (60): every enabled user (a disabled one is
not in the snapshot, so it is not read) and every session to end, read a page (1,000 rows) at
a time, so that other work runs between pages however big the store.

Revocations never wait on the rest of the config. An app that cannot be served (a host that
clashes with another app's or the portal's, or one refused on plain HTTP) is left out of the
snapshot with a warning. Should a snapshot still fail to build, the last one goes out again
with the sessions to end and the keys of now, and the error is logged once a minute.

Serials are milliseconds since the epoch, kept strictly increasing, so a gateway can tell newer
from older even across authz restarts and replicas.

A snapshot is only as good as the last look that read the store. While looks fail (this
replica has lost its database, whoever else still has it), the publisher stops vouching for
its snapshot after ten polls (5 s): the feed then sends no heartbeat, and refuses new
connections with a 503, so the gateways following this replica count the snapshot's age from
the last look that worked and refuse requests at ``feed_max_stale`` after it, as when authz is
down. Heartbeats of a stale view would have kept them serving a session revoked on another
replica for as long as the cut lasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from lychgate.authz.context import AuthzContext
from lychgate.authz.sessions_to_end import PAGE, SessionsToEnd, ended_listed_for, sessions_to_end
from lychgate.deployment.transport import unservable_apps
from lychgate.domain import App
from lychgate.errors import ConfigError, StoreError
from lychgate.events import LoginApproved, LoginDenied, OpenApp
from lychgate.gateway.app_hosts import host_clashes
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile, wire_problem
from lychgate.ids import SessionId, UserId
from lychgate.store import ChangedUser
from lychgate.tokens import Keyring, PublicKeyring

log = logging.getLogger(__name__)
FULL_EVERY: Final = 60.0  # seconds between full rebuilds when the change counter is still
# Seconds between looks: a change made elsewhere (the CLI, another replica on SQLite) waits
# at most this long to be seen, which leaves the rest of the second for building and sending.
POLL_INTERVAL: Final = 0.5
# For how many polls after the start of the last look that read the store the snapshot is
# still vouched for (module docstring): ten (5 s), so a slow look or a brief failover never
# pauses the heartbeats, which a gateway misses only after three (15 s).
VOUCH_FOR_POLLS: Final = 10


def _warn_about_a_path(app: App) -> None:
    """An upstream stored with a path (``http://h:9/sub``, which ``app add`` took before it
    refused paths) is served, as before, at ``/``: the gateway forwards the request's own
    path. Say so, with the fix, rather than leave the app out of a snapshot it used to be in."""
    if app.upstream.startswith("unix:"):
        return
    parts = urlsplit(app.upstream)
    path = parts.path
    if path not in ("", "/"):
        log.warning(
            "app %s: its upstream %s has a path (%s), which the gateway does not add to "
            "requests; give it without: lychgate app update %s --upstream %s",
            app.slug,
            app.upstream,
            path,
            app.slug,
            f"{parts.scheme}://{parts.netloc}",
        )


async def build_snapshot(
    ctx: AuthzContext,
    *,
    serial: int,
    now: datetime,
    users: dict[UserId, UserProfile] | None = None,
    revoked: frozenset[SessionId] | None = None,
) -> ConfigSnapshot:
    """Read apps, enabled users, live revocations and keys into one snapshot.

    ``users`` and ``revoked`` skip reading the users and the sessions to end: the caller has
    brought them up to date already (:func:`read_user_changes`, :class:`SessionsToEnd`)."""
    store, settings = ctx.store, ctx.settings
    apps = tuple(await store.apps.list())
    # Added by another process with other settings (`serve` would not start), unreadable to
    # gateways, or clashing with another app's host: left out, so that the rest (revocations
    # above all) still goes out.
    refused = unservable_apps(settings, apps)
    for app in apps:
        problem = wire_problem(app)  # a row written by hand, or by an older writer
        if problem is not None:
            refused[app.slug] = problem
    if settings.routing == "subdomains":
        kept = [app for app in apps if app.slug not in refused]
        refused |= host_clashes(kept, public_url=settings.public_url, domain=settings.app_domain)
    if refused:
        for slug, why in refused.items():
            log.warning("app %s left out of the snapshot: %s", slug, why)
        apps = tuple(app for app in apps if app.slug not in refused)
    for app in apps:
        _warn_about_a_path(app)
    if users is None:
        users = {}
        await read_user_changes(ctx, users, since=-1)
    if revoked is None:
        revoked = await sessions_to_end(ctx, now)
    keyring = await public_keys(ctx, now)
    return ConfigSnapshot(
        serial=serial,
        issued_at=now,
        issuer=settings.public_url,
        routing=settings.routing,
        public_url=settings.public_url,
        app_domain=settings.app_domain,
        setup_done=await store.users.count_admins() > 0,
        apps=apps,
        users=users,
        revoked_sessions=revoked,
        keyring=keyring,
        assertion_key=ctx.secrets.assertion_key,
    )


async def read_user_changes(
    ctx: AuthzContext,
    users: dict[UserId, UserProfile],
    *,
    since: int,
    known: Mapping[UserId, UserProfile] | None = None,
) -> int:
    """Apply to ``users`` every user write that set the change counter above ``since``: an
    enabled user's profile goes in, a disabled one comes out. Returns how many were read;
    ``since=-1`` reads every enabled user (into an empty ``users``: no one to take out).

    A profile equal to the one ``known`` (by default ``users``) holds goes in as that very
    object: a full rebuild of 100,000 users leaves no 100,000 new objects behind for the
    garbage collector to go through (each full collection holds the loop for ~0.1 s then)."""
    read = 0
    after: ChangedUser | None = None
    everyone = since < 0
    known = users if known is None else known
    while True:
        page = await ctx.store.users.changed_since(
            since, limit=PAGE, after=after, enabled_only=everyone
        )
        for change in page:
            user = change.user
            if user.disabled:
                users.pop(user.id, None)
            else:
                groups = ("admins",) if user.is_admin else ()
                profile = UserProfile(name=user.name, email=user.email, groups=groups)
                was = known.get(user.id)
                users[user.id] = was if was == profile else profile
        read += len(page)
        if len(page) < PAGE:
            return read
        after = page[-1]


async def public_keys(ctx: AuthzContext, now: datetime) -> PublicKeyring:
    """The public half of the signing keys in use or still verifying at ``now``."""
    keyring = Keyring(await ctx.store.signing_keys.list(), now)
    return PublicKeyring.from_jwks(keyring.jwks())


class SnapshotPublisher:
    """Keeps the latest snapshot and wakes feed connections when it changes."""

    def __init__(
        self,
        ctx: AuthzContext,
        *,
        poll_interval: float = POLL_INTERVAL,
        full_every: float = FULL_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._vouch_for = VOUCH_FOR_POLLS * poll_interval
        self._monotonic = clock
        self._read_at = -math.inf  # monotonic start of the last look that read the store
        self._poll = poll_interval
        self._full_every = full_every
        self._latest: ConfigSnapshot | None = None
        self._ending = SessionsToEnd(ended_listed_for(ctx))
        self._version: int | None = None  # the change counter the latest users read saw
        self._full_at = -math.inf  # monotonic time of the latest full build
        self._tick = asyncio.Event()  # set (and replaced) on every publish and on close
        self._wake = asyncio.Event()
        self._serial = 0
        self._closed = False
        self._looking = asyncio.Lock()
        # For tests and the curious: how many looks read every user, and how many user rows
        # were read in all (the full builds' and the changes').
        self.full_builds = 0
        self.users_read = 0
        self._unbuildable = Throttle(time.monotonic, window=60.0)  # one line a minute per error
        # A failed look (the database down: twice a second) logs its traceback once per kind
        # of error every 10 s, with a count of the rest; it used to be ~330 lines a second.
        self._failed_looks = Throttle(time.monotonic)

    @property
    def latest(self) -> ConfigSnapshot | None:
        return self._latest

    def poke(self) -> None:
        """Look soon (something changed)."""
        self._wake.set()

    async def refresh(self) -> bool:
        """Look now; publish and return True if the content changed (module docstring).

        One look at a time: two that overlap (the publisher's loop, and a request before the
        first snapshot) could otherwise publish out of order, the older view last, and a
        revocation would vanish from the feed until the next look.
        """
        async with self._looking:
            started = self._monotonic()
            changed = await self._look()
            self._read_at = started  # it raised if the store could not be read
            return changed

    def vouches(self) -> bool:
        """True while the latest snapshot reflects a look at the store begun within the last
        ten polls (module docstring): only then does the feed confirm it."""
        return self._latest is not None and self._monotonic() - self._read_at <= self._vouch_for

    async def _look(self) -> bool:
        ctx = self._ctx
        version = await ctx.store.config_changes.version()  # before reading what it guards
        now = ctx.clock()
        moment = time.monotonic()
        latest, seen = self._latest, self._version
        due = moment - self._full_at >= self._full_every  # the safety net's turn
        if due:
            self._full_at = moment
        if latest is None or version is None or seen is None or due:
            # Everything (the first look, and the safety net's): every user, from nothing.
            users: dict[UserId, UserProfile] | None = {}
            since = -1
            self.full_builds += 1
        elif version != seen:
            users, since = dict(latest.users), seen  # the users written since the last look
        else:
            users, since = None, seen
        revoked = await self._ending.look(ctx.store.sessions, now, full=due)  # its first: full
        if users is None:
            assert latest is not None
            return await self._publish_ends_and_keys(latest, now, revoked)  # the usual look
        known = None if latest is None else latest.users
        self.users_read += await read_user_changes(ctx, users, since=since, known=known)
        try:
            fresh = await build_snapshot(
                ctx, serial=self._next_serial(now), now=now, users=users, revoked=revoked
            )
        except ConfigError as exc:
            if latest is None:
                raise
            # Whatever is wrong with the stored config, sessions still end everywhere: the
            # last snapshot goes out again with the sessions to end and keys of now.
            more = self._unbuildable.due(exc.message)
            if more is not None:
                log.error(
                    "could not build a config snapshot (%s)%s; gateways keep the last one, "
                    "with revocations and keys kept current",
                    exc,
                    more,
                )
            return await self._publish_ends_and_keys(latest, now, revoked)
        self._version = version
        if latest is not None and latest.same_content(fresh):
            return False
        self._publish(fresh)
        return True

    async def _publish_ends_and_keys(
        self, latest: ConfigSnapshot, now: datetime, revoked: frozenset[SessionId]
    ) -> bool:
        """Publish ``latest`` with ``revoked`` and the keys of now, if they changed."""
        keyring = await public_keys(self._ctx, now)
        # The same set when no session changed (SessionsToEnd): no need to compare them all.
        same = revoked is latest.revoked_sessions or revoked == latest.revoked_sessions
        if same and keyring.jwks() == latest.keyring.jwks():
            return False  # nothing changed, nothing built
        fresh = replace(
            latest,
            serial=self._next_serial(now),
            issued_at=now,
            revoked_sessions=revoked,
            keyring=keyring,
        )
        self._publish(fresh)
        return True

    def _next_serial(self, now: datetime) -> int:
        return max(self._serial + 1, int(now.timestamp() * 1000))

    def _publish(self, fresh: ConfigSnapshot) -> None:
        self._serial = fresh.serial
        self._latest = fresh
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def run(self) -> None:
        """Rebuild on bus events and every poll interval, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen())
            while True:
                try:
                    await self.refresh()
                except StoreError as exc:
                    # The database is down or refusing: one line that says why (the driver's
                    # reason). Its traceback, SQLAlchemy's and the driver's frames, was some
                    # eighty lines each time and told an operator nothing more.
                    more = self._failed_looks.due(type(exc).__name__)
                    if more is not None:
                        log.error(
                            "could not read the config store; gateways are told nothing new "
                            "and stop being confirmed after %g s: %s%s",
                            self._vouch_for,
                            exc,
                            more,
                        )
                except Exception as exc:
                    more = self._failed_looks.due(type(exc).__name__)
                    if more is not None:
                        log.error(
                            "could not rebuild the config snapshot; keeping the last one%s",
                            more,
                            exc_info=exc,
                        )
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that comes
                # as the wait ends (a poke just before authz stops), and this loop then never
                # stopped. asyncio.timeout tells its own cancellation from the caller's.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
                self._wake.clear()

    async def _listen(self) -> None:
        async with self._ctx.bus.subscribe() as events:
            async for event in events:
                # Revocations, config changes, and Lagged markers (we may have missed one).
                if not isinstance(event, LoginApproved | LoginDenied | OpenApp):
                    self.poke()

    def close(self) -> None:
        """End every subscription (shutting down: feed responses finish, uvicorn can stop)."""
        self._closed = True
        self._tick.set()

    async def subscribe(self) -> AsyncGenerator[ConfigSnapshot, None]:
        """The current snapshot, then each new one, until the caller stops or we close."""
        seen: ConfigSnapshot | None = None
        while not self._closed:
            if self._latest is seen:
                await self._tick.wait()
                continue
            seen = self._latest
            if seen is not None:
                yield seen
