"""Building the gateways' config snapshot from the store, and publishing it on change.

Theory of operation
-------------------
One :class:`SnapshotPublisher` per authz process builds a :class:`ConfigSnapshot` from the
store, and every feed connection reads from it, so N gateways cost one set of queries. It
looks when the event bus says something changed (a revocation; on PostgreSQL, every write to
users or apps, whichever process makes it, announces itself on the bus as it commits:
:mod:`lychgate.store.sql.base`) and every ``poll_interval`` seconds: on SQLite, edits made by
the CLI in another process reach gateways within that interval, and so does anything a
writer did not announce. A new snapshot is published only when its content differs from the
last one.

A look costs a few small reads, not a read of every user or every revoked session: the
store's change counter (every write to users or apps bumps it, in the same transaction,
whichever process makes it), the sessions revoked or ended since the last look (ranges of two
indexes: :mod:`.sessions_to_end`) and the signing keys. When the counter has not moved, the
last snapshot gets the new revoked set and keys, if they differ. When it has, the look also
reads the users and the apps whose rows changed since the counter value it last saw (each
write records the value it moved the counter to, ``users.changed_in`` and
``apps.changed_in``), and applies those to the last snapshot's users and to the stored apps
it keeps (:mod:`.snapshot_apps`): a user enrolled or an app edited costs one row, not ten
thousand. The feed then sends each gateway only what changed (:mod:`~lychgate.gateway.feed_wire`).
As a safety net against a writer that does not bump (an older replica during an upgrade) or
whose revocations are stamped too far in the past (its clock is behind), a full rebuild also
runs every ``full_every`` seconds (60): every app, every enabled user (a disabled one is not
in the snapshot, so it is not read) and every session to end, read a page (1,000 rows) at a
time, so that other work runs between pages however big the store. When it falls due in a
look that has a change to read, it waits for the next look: the change goes out first.

Revocations never wait on the rest of the config. An app that cannot be served (a host that
clashes with another app's or the portal's, or one refused on plain HTTP) is left out of the
snapshot with a warning (:class:`~.snapshot_apps.AppSelection`). Should a snapshot still fail
to build, the last one goes out again with the sessions to end and the keys of now, and the
error is logged once a minute.

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
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Final

from lychgate.authz.context import AuthzContext
from lychgate.authz.sessions_to_end import PAGE, SessionsToEnd, ended_listed_for, sessions_to_end
from lychgate.authz.snapshot_apps import AppSelection, read_app_changes
from lychgate.domain import App
from lychgate.errors import ConfigError, StoreError
from lychgate.events import LoginApproved, LoginDenied, OpenApp
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.ids import AppId, SessionId, UserId
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


async def build_snapshot(
    ctx: AuthzContext,
    *,
    serial: int,
    now: datetime,
    users: dict[UserId, UserProfile] | None = None,
    revoked: frozenset[SessionId] | None = None,
    apps: Iterable[App] | None = None,
    selection: AppSelection | None = None,
) -> ConfigSnapshot:
    """Read apps, enabled users, live revocations and keys into one snapshot.

    ``users``, ``revoked`` and ``apps`` (every stored app) skip reading the users, the
    sessions to end and the apps: the caller has brought them up to date already
    (:func:`read_user_changes`, :class:`SessionsToEnd`, :func:`read_app_changes`).
    ``selection`` remembers what it checked of each app from one build to the next."""
    store, settings = ctx.store, ctx.settings
    stored = await store.apps.list() if apps is None else apps
    served = (selection or AppSelection()).select(settings, stored)
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
        apps=served,
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
        self._version: int | None = None  # the change counter the latest read saw
        self._apps: dict[AppId, App] | None = None  # every stored app, as of _version
        self._selection = AppSelection()
        self._full_at = -math.inf  # monotonic time of the latest full build
        self._deferred = False  # a full build put off by one look, for a change (_look)
        self._tick = asyncio.Event()  # set (and replaced) on every publish and on close
        self._wake = asyncio.Event()
        self._serial = 0
        self._closed = False
        self._looking = asyncio.Lock()
        # For tests and the curious: how many looks read every user and app, and how many
        # user and app rows were read in all (the full builds' and the changes').
        self.full_builds = 0
        self.users_read = 0
        self.apps_read = 0
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
        if due and seen is not None and version != seen and not self._deferred:
            # A change waits for no safety net (reading every app and user took a few tenths
            # of a second): this look reads what changed, the next one everything.
            due, self._deferred = False, True
        if due:
            self._full_at, self._deferred = moment, False
        stored = self._apps
        if latest is None or version is None or seen is None or stored is None or due:
            # Everything (the first look, and the safety net's): every user and app.
            users: dict[UserId, UserProfile] | None = {}
            apps: dict[AppId, App] = {}
            since = -1
            self.full_builds += 1
        elif version != seen:
            # The users and apps written since the last look, applied to copies: should the
            # build fail, the next look reads them again.
            users, apps, since = dict(latest.users), dict(stored), seen
        else:
            users, apps, since = None, {}, seen
        revoked = await self._ending.look(ctx.store.sessions, now, full=due)  # its first: full
        if users is None:
            assert latest is not None
            return await self._publish_ends_and_keys(latest, now, revoked)  # the usual look
        known = None if latest is None else latest.users
        users_rows = await read_user_changes(ctx, users, since=since, known=known)
        app_rows = await read_app_changes(ctx.store, apps, since=since, known=stored)
        if since >= 0 and not (users_rows or app_rows):
            # The counter moved, yet no write recorded what it changed: a writer older than
            # apps.changed_in (during an upgrade) edited an app. Read every app, as it used to
            # be done on every move, rather than wait for the full rebuild.
            apps = {}
            app_rows += await read_app_changes(ctx.store, apps, since=-1, known=stored)
        self.users_read += users_rows
        self.apps_read += app_rows
        try:
            fresh = await build_snapshot(
                ctx,
                serial=self._next_serial(now),
                now=now,
                users=users,
                revoked=revoked,
                apps=apps.values(),
                selection=self._selection,
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
        self._version, self._apps = version, apps
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
