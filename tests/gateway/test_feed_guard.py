"""Tunnels close once the config feed is silent past max_stale (lychgate.gateway.feed_guard)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from fixtures.clocks import Ticks
from gateway.conftest import Start, upgrade_to
from gateway.world import World
from lychgate.gateway.feed_guard import TunnelGuard, tunnel_gate
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.ids import SessionId

SNAPSHOT = World().snapshot


class Tunnels:
    """Stands in for the server: counts close-all calls, reports ``open`` closed each time."""

    def __init__(self, open_: int) -> None:
        self.open = open_
        self.calls = 0

    def close_all(self) -> int:
        self.calls += 1
        return self.open


def test_tunnels_close_once_when_the_snapshot_expires(caplog: pytest.LogCaptureFixture) -> None:
    ticks = Ticks()
    holder = SnapshotHolder(clock=ticks)
    tunnels = Tunnels(3)
    guard = TunnelGuard(holder, tunnels.close_all, max_stale=300.0)
    assert guard.check() == 0  # no snapshot yet: no tunnel could have opened
    holder.replace(SNAPSHOT)
    ticks.now = 300.0
    assert guard.check() == 0  # at the bound, still serving
    assert tunnels.calls == 0
    ticks.now = 300.5
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.feed_guard"):
        assert guard.check() == 3
    assert "closed 3 WebSocket(s) and stream(s)" in caplog.text
    ticks.now = 900.0
    assert guard.check() == 0  # still expired: closed once, not on every look
    assert tunnels.calls == 1
    assert holder.confirm(SNAPSHOT.serial)  # the feed is back
    assert guard.check() == 0
    ticks.now = 1200.5  # and silent again
    assert guard.check() == 3
    assert tunnels.calls == 2


def test_a_feed_that_keeps_confirming_never_closes_anything() -> None:
    ticks = Ticks()
    holder = SnapshotHolder(clock=ticks)
    holder.replace(SNAPSHOT)
    tunnels = Tunnels(1)
    guard = TunnelGuard(holder, tunnels.close_all, max_stale=300.0)
    for second in range(0, 3600, 30):
        ticks.now = float(second)
        holder.confirm(SNAPSHOT.serial)  # the feed's heartbeat
        assert guard.check() == 0
    assert tunnels.calls == 0


@pytest.mark.loopback
async def test_a_real_tunnel_is_closed_by_the_guard(
    gateway: Start,
    ws_upstream: str,
) -> None:
    ticks = Ticks()
    holder = SnapshotHolder(clock=ticks)
    holder.replace(SNAPSHOT)
    gw = await gateway(upgrade_to(ws_upstream))
    guard = TunnelGuard(holder, gw.close_all_open, max_stale=300.0)
    watching = asyncio.create_task(guard.run(every=0.01))
    try:
        async with ws_connect(f"ws://127.0.0.1:{gw.port}/ws") as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            ticks.now = 301.0  # five minutes without the feed
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    await ws.recv()
        assert gw.open_tunnels == 0
    finally:
        watching.cancel()


def test_the_gate_refuses_tunnels_of_ended_sessions_and_of_an_expired_feed() -> None:
    ticks = Ticks()
    holder = SnapshotHolder(clock=ticks)
    gate = tunnel_gate(holder, max_stale=300.0)
    assert gate(SessionId("s-1")) == (503, "config feed expired during the WebSocket handshake")
    holder.replace(
        SNAPSHOT.with_sessions(
            serial=2,
            issued_at=SNAPSHOT.issued_at,
            revoked_sessions=frozenset({SessionId("s-gone")}),
        )
    )
    assert gate(SessionId("s-1")) is None
    assert gate(None) is None
    assert gate(SessionId("s-gone")) == (401, "session ended during the WebSocket handshake")
    ticks.now = 300.5
    assert gate(SessionId("s-1")) == (503, "config feed expired during the WebSocket handshake")
