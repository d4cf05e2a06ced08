"""A connect that fails for want of the gateway's own file descriptors is not the app's fault.

Out of descriptors (EMFILE), every connect to an app used to be a 502 counted as that app's
``connect`` failure: an alert on it told the operator the app was down, which it was not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Iterator

import pytest

from gateway.upstreams import http_upstream
from lychgate.gateway.http.pool import LOCAL, UpstreamError, UpstreamPool, unverified_client_context
from lychgate.gateway.types import Upstream

pytestmark = pytest.mark.loopback


def _lowest_free_descriptor() -> int:
    """A limit at this number refuses every new descriptor: each takes the lowest free."""
    listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        taken = {int(name) for name in os.listdir(listing)} - {listing}
    finally:
        os.close(listing)
    return min(set(range(len(taken) + 1)) - taken)


@contextlib.contextmanager
def _no_descriptor_left(lowest_free: int) -> Iterator[None]:
    """The process may open no more file descriptors until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_out_of_descriptors_is_the_gateways_503_not_the_apps_502() -> None:
    async with http_upstream() as up:
        pool = UpstreamPool(ssl_context=unverified_client_context())
        lowest = await asyncio.to_thread(_lowest_free_descriptor)
        with _no_descriptor_left(lowest), pytest.raises(UpstreamError) as failed:
            await pool.connect(Upstream(up.url))
        assert (failed.value.kind, failed.value.status) == (LOCAL, 503)
        assert "Too many open files" in str(failed.value)
        conn = await pool.connect(Upstream(up.url))  # and once there are some again, it works
        conn.close()
        pool.close()
