"""An app's own request limits travel only to gateways that read them (``app-limits``).

A gateway from before per-app limits refuses a snapshot with a member it does not know, and
would then stay on its last snapshot, deaf to revocations, until it went stale and refused
everyone. So authz leaves the members out for it, and says so in its log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.feed_harness import WORLD, kinds
from gateway.world import APPS, make_app
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import (
    APP_LIMITS,
    SESSIONS,
    UPDATES,
    asked_updates,
    parse_line,
    snapshot_line,
)
from lychgate.gateway.snapshot import ConfigSnapshot, apps_with_own_limits
from lychgate.ids import AppSlug, SessionId

# What a gateway from before these members reads in an app, and refuses beyond.
FORMAT_1_APP_MEMBERS = {
    "id", "slug", "name", "upstream", "host", "policy", "websockets", "description", "icon",
    "verify_tls", "connect_timeout", "read_timeout", "max_body_bytes", "enabled",
    "allow_cross_origin",
}  # fmt: skip
LIMITED = make_app("strict", max_header_bytes=2048, max_headers=16, idle_timeout=3.0)
WITH_LIMITS = WORLD.changed(serial=2, apps=(*APPS, LIMITED))


def sent_apps(line: bytes) -> dict[str, dict[str, Any]]:
    return {a["slug"]: a for a in json.loads(line)["snapshot"]["apps"]}


def test_an_older_gateway_gets_only_members_it_knows() -> None:
    line = snapshot_line(WITH_LIMITS, app_limits=False)
    for app in sent_apps(line).values():
        assert set(app) <= FORMAT_1_APP_MEMBERS
    received = parse_line(line.rstrip(b"\n"))
    assert isinstance(received, ConfigSnapshot)
    strict = received.apps_by_slug[AppSlug("strict")]
    assert (strict.max_header_bytes, strict.max_headers, strict.idle_timeout) == (None,) * 3
    # Everything else arrives whole.
    assert received.revoked_sessions == WITH_LIMITS.revoked_sessions
    assert [a.slug for a in received.apps] == [a.slug for a in WITH_LIMITS.apps]


def test_a_gateway_that_reads_them_gets_them() -> None:
    received = parse_line(snapshot_line(WITH_LIMITS).rstrip(b"\n"))
    assert isinstance(received, ConfigSnapshot)
    assert received.apps_by_slug[AppSlug("strict")] == LIMITED


def test_this_gateway_asks_for_app_limits() -> None:
    assert APP_LIMITS in UPDATES
    assert asked_updates("app-limits, sessions") == {APP_LIMITS, SESSIONS}
    assert apps_with_own_limits(WITH_LIMITS) == ["strict"]
    assert apps_with_own_limits(WORLD.snapshot) == []


async def _lines(updates: frozenset[str], *snapshots: ConfigSnapshot) -> list[bytes]:
    async def source() -> AsyncIterator[ConfigSnapshot]:
        for snapshot in snapshots:
            yield snapshot
            await asyncio.sleep(0.01)

    return [line async for line in feed_lines(source(), heartbeat_interval=5, updates=updates)]


async def test_the_feed_leaves_them_out_for_an_older_gateway_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    later = WITH_LIMITS.with_sessions(
        serial=3, issued_at=WITH_LIMITS.issued_at, revoked_sessions=frozenset({SessionId("s")})
    )
    caplog.set_level(logging.WARNING, logger="lychgate.gateway.feed_serve")
    lines = await _lines(frozenset({SESSIONS}), WORLD.snapshot, WITH_LIMITS, later)
    assert kinds(lines) == ["snapshot", "snapshot", "sessions"]
    assert set(sent_apps(lines[1])["strict"]) <= FORMAT_1_APP_MEMBERS
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # the app is named once on the connection
    assert "predates per-app request limits" in warnings[0]
    assert "strict" in warnings[0]


async def test_no_warning_when_the_gateway_reads_them_or_no_app_sets_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="lychgate.gateway.feed_serve")
    lines = await _lines(UPDATES, WITH_LIMITS)
    assert sent_apps(lines[0])["strict"]["max_headers"] == 16
    await _lines(frozenset(), WORLD.snapshot)
    assert caplog.records == []


async def test_an_app_that_sets_limits_later_is_named_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tight = make_app("tight", max_header_bytes=4096)
    both = WORLD.changed(serial=3, apps=(*APPS, LIMITED, tight))
    caplog.set_level(logging.WARNING, logger="lychgate.gateway.feed_serve")
    await _lines(
        frozenset({SESSIONS}),
        WITH_LIMITS,
        both,
        both.with_sessions(
            serial=4, issued_at=both.issued_at, revoked_sessions=frozenset({SessionId("s")})
        ),
    )
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # each app once, when it first sets one
    assert warnings[0].endswith("applies its listener's limits to strict until it is upgraded")
    assert warnings[1].endswith("applies its listener's limits to tight until it is upgraded")
