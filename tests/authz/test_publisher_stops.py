"""The snapshot publisher stops when cancelled, even right after a poke.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that comes as the awaited wait
ends: a revocation (which pokes the publisher) just before authz stopped left the publisher
looping, and its shutdown, and so a test's teardown, hung until the test timeout.
"""

from __future__ import annotations

import asyncio

from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher


async def test_a_poke_just_before_the_stop_does_not_keep_it_running(ctx: AuthzContext) -> None:
    for yields in range(3):  # the cancellation at each step of the wait's ending
        publisher = SnapshotPublisher(ctx, poll_interval=0.05)
        task = asyncio.create_task(publisher.run())
        await asyncio.sleep(0.1)  # looked once, now waiting for a poke or the poll
        publisher.poke()
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, f"the publisher ignored its cancellation ({yields} yields)"
