"""The snapshot publisher stops when cancelled, even right after a poke.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that comes as the awaited wait
ends: a revocation (which pokes the publisher) just before authz stopped left the publisher
looping, and its shutdown, and so a test's teardown, hung until the test timeout.
"""

from __future__ import annotations

import asyncio
import contextlib

from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher


async def looked_once(publisher: SnapshotPublisher) -> None:
    """Return once the publisher has published its first look.

    A subscriber is woken by the publish, and runs only when the publisher's task next
    yields: in its loop, that is the wait for a poke. So on return it is waiting there, which
    is where the poke must find it (a fixed sleep could land in a look instead).
    """
    async with contextlib.aclosing(publisher.subscribe()) as snapshots:
        await anext(snapshots)


async def test_a_poke_just_before_the_stop_does_not_keep_it_running(ctx: AuthzContext) -> None:
    for yields in range(3):  # the cancellation at each step of the wait's ending
        # No poll within the test: the poke alone ends the wait.
        publisher = SnapshotPublisher(ctx, poll_interval=3600)
        task = asyncio.create_task(publisher.run())
        async with asyncio.timeout(10):
            await looked_once(publisher)
        publisher.poke()
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)  # a hang guard
        assert done, f"the publisher ignored its cancellation ({yields} yields)"
