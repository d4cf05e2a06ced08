"""On PostgreSQL a config write made by another process (the CLI, another replica) wakes the
snapshot publisher through the event bus as it commits: no waiting for the next poll."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from authz.conftest import Clock
from fixtures.store import T0, make_app, make_user
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.config import Settings
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets
from lychgate.events import PostgresBus
from lychgate.store import open_store


async def test_a_write_elsewhere_is_published_without_a_poll(
    pg_url: str, settings: Settings, secrets: DeploymentSecrets, clock: Clock
) -> None:
    store, elsewhere = await open_store(pg_url), await open_store(pg_url)
    bus = await PostgresBus.connect(pg_url)
    try:
        await ensure_signing_key(store.signing_keys, T0)
        ctx = AuthzContext(settings=settings, store=store, bus=bus, secrets=secrets, clock=clock)
        publisher = SnapshotPublisher(ctx, poll_interval=3600)  # no poll within the test
        task = asyncio.create_task(publisher.run())
        try:
            async with contextlib.aclosing(publisher.subscribe()) as snapshots:
                async with asyncio.timeout(10):  # a hang guard, not a measurement
                    first = await anext(snapshots)
                    assert first.apps == ()
                    app = make_app()
                    await elsewhere.apps.add(app)  # as `lychgate app add` would
                    added = await anext(snapshots)
                    assert [a.slug for a in added.apps] == [app.slug]
                    user = make_user()
                    await elsewhere.users.add(user)
                    assert user.id in (await anext(snapshots)).users
                    await elsewhere.apps.update(dataclasses.replace(app, name="Renamed"))
                    assert (await anext(snapshots)).apps[0].name == "Renamed"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await bus.close()
        await elsewhere.close()
        await store.close()
