"""The upstream pool (lychgate.gateway.http.pool)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway.upstreams import http_upstream
from gateway.waiting import eventually
from lychgate.errors import ConfigError
from lychgate.gateway.http.pool import (
    Endpoint,
    UpstreamError,
    UpstreamPool,
    parse_upstream_url,
    unverified_client_context,
)
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.types import Upstream


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://app:8080", Endpoint("app", 8080, None, False)),
        ("http://app", Endpoint("app", 80, None, False)),
        ("https://app.internal", Endpoint("app.internal", 443, None, True)),
        ("https://[::1]:8443/", Endpoint("::1", 8443, None, True)),
        ("unix:/run/app.sock", Endpoint("", 0, "/run/app.sock", False)),
    ],
)
def test_parse_upstream_url(url: str, endpoint: Endpoint) -> None:
    assert parse_upstream_url(url) == endpoint


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "http://", "unix:relative.sock", "http://u:p@x", "http://x?q=1", "http://x:99999"],
)
def test_parse_upstream_url_refuses(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_upstream_url(url)


def _pool(**kwargs: object) -> UpstreamPool:
    return UpstreamPool(ssl_context=unverified_client_context(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.loopback
async def test_released_connections_are_reused_lifo_and_go_stale() -> None:
    async with http_upstream() as up:
        pool = _pool(idle_timeout=0.1)
        target = Upstream(up.url)
        assert pool.acquire(target) is None
        a = await pool.connect(target)
        b = await pool.connect(target)
        pool.release(a)
        pool.release(b)
        assert pool.acquire(target) is b
        assert pool.acquire(target) is a
        assert pool.acquire(Upstream(up.url, verify_tls=False)) is None  # another key
        pool.release(a)
        await asyncio.sleep(0.15)
        assert pool.acquire(target) is None  # stale: closed, not handed out
        pool.close()


@pytest.mark.loopback
async def test_max_connections_makes_callers_wait_for_a_release() -> None:
    async with http_upstream() as up:
        pool = _pool(max_connections=1)
        target = Upstream(up.url, connect_timeout=1.0)
        first = await pool.connect(target)
        waiting = asyncio.ensure_future(pool.connect(target))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pool.release(first)
        assert await waiting is first  # handed over, not a new connection
        assert pool.open_connections == 1
        pool.close()


@pytest.mark.loopback
async def test_waiting_for_a_slot_times_out_with_504() -> None:
    async with http_upstream() as up:
        pool = _pool(max_connections=1)
        target = Upstream(up.url, connect_timeout=0.1)
        first = await pool.connect(target)
        with pytest.raises(UpstreamError) as info:
            await pool.connect(target)
        assert info.value.status == 504
        first.close()
        await eventually(lambda: not pool.open_connections)
        second = await pool.connect(target)  # the closed one's slot is free again
        assert second is not first
        pool.close()


@pytest.mark.loopback
async def test_refused_is_502_and_closed_pool_refuses() -> None:
    async with http_upstream() as up:
        url = up.url
    pool = _pool()
    with pytest.raises(UpstreamError) as info:
        await pool.connect(Upstream(url))
    assert info.value.status == 502
    pool.close()
    with pytest.raises(UpstreamError):
        await pool.connect(Upstream(url))


@pytest.mark.loopback
async def test_idle_connections_close_on_their_own_whatever_their_upstream() -> None:
    # An app whose upstream URL changed, or that was removed, is never asked for again: its
    # idle connections must not stay open for the worker's life.
    async with http_upstream() as old, http_upstream() as new:
        pool = _pool(idle_timeout=0.1)
        retired = Upstream(old.url)
        conns = [await pool.connect(retired) for _ in range(3)]
        for conn in conns:
            pool.release(conn)
        current = Upstream(new.url)
        pool.release(await pool.connect(current))
        assert pool.open_connections == 4
        await eventually(lambda: not pool.open_connections)
        assert pool.sweep() == 0  # nothing left to close, and nothing remembered
        assert pool.acquire(retired) is None
        pool.close()


@pytest.mark.loopback
async def test_a_connection_is_reused_only_for_its_owner() -> None:
    # HTTP/1.1 cannot tell late bytes of one answer from the next answer: a connection that
    # carried alice's requests never carries bob's.
    async with http_upstream() as up:
        pool = _pool()
        target = Upstream(up.url)
        alice = await pool.connect(target, "alice")
        pool.release(alice)
        assert pool.acquire(target, "bob") is None
        assert pool.acquire(target) is None  # nobody's requests either (authz's pages)
        assert pool.acquire(target, "alice") is alice
        pool.release(alice)
        bob = await pool.connect(target, "bob")
        pool.release(bob)
        assert pool.acquire(target, "alice") is alice  # found under bob's, fresher one
        assert pool.acquire(target, "bob") is bob
        pool.close()


@contextlib.asynccontextmanager
async def _one_slot_held_by_alice() -> AsyncIterator[
    tuple[UpstreamPool, Upstream, UpstreamConnection]
]:
    """A pool of one connection per upstream, alice's open and busy."""
    async with http_upstream() as up:
        pool = _pool(max_connections=1)
        target = Upstream(up.url, connect_timeout=1.0)
        alice = await pool.connect(target, "alice")
        yield pool, target, alice
        assert pool.open_connections == 1
        pool.close()


@pytest.mark.loopback
async def test_at_the_limit_another_owners_idle_connection_gives_up_its_slot() -> None:
    async with _one_slot_held_by_alice() as (pool, target, alice):
        pool.release(alice)
        bob = await pool.connect(target, "bob")  # no wait: alice's idle one is closed
        assert bob is not alice
        await eventually(lambda: not alice.usable)


@pytest.mark.loopback
async def test_a_release_while_another_owner_waits_passes_on_the_slot_only() -> None:
    async with _one_slot_held_by_alice() as (pool, target, alice):
        waiting = asyncio.ensure_future(pool.connect(target, "bob"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pool.release(alice)
        bob = await waiting
        assert bob is not alice  # a new connection, in alice's slot
        pool.release(bob)
        assert pool.acquire(target, "bob") is bob
