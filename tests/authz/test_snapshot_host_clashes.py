"""Revocations reach the gateways whatever is wrong with the stored apps.

An app whose host clashes with another app's or the portal's would make every snapshot fail to
build (gateways refuse a snapshot with two apps on one host). authz used to keep its last
snapshot then, and with it its revoked set: a disabled user stayed admitted until the clash
was removed. Now the clashing app is left out; and should a snapshot fail to build for any
other reason, the last one still goes out with the sessions to end
(test_snapshot_unbuildable.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from authz.conftest import Clock
from authz.snapshot_apps import snapshot_with
from authz.test_internal import signed_in
from fixtures.store import make_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import SnapshotPublisher, build_snapshot
from lychgate.config import Settings, load_settings
from lychgate.gateway.snapshot import check_snapshot
from lychgate.ids import AppSlug, token_sid

SUBDOMAINS = {
    "LYCHGATE_PUBLIC_URL": "https://auth.example.com",
    "LYCHGATE_ROUTING": "subdomains",
    "LYCHGATE_DOMAIN": "example.com",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:  # overrides authz/conftest.py's
    return load_settings(tmp_path, SUBDOMAINS)


async def test_an_app_on_another_apps_host_is_left_out(
    ctx: AuthzContext, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    echo = make_app(slug=AppSlug("echo"))
    clash = make_app(slug=AppSlug("clash"), host="echo.example.com")
    portal = make_app(slug=AppSlug("sso"), host="auth.example.com")
    for app in (echo, clash, portal):
        await ctx.store.apps.add(app)  # as a CLI without the check, or older, wrote them
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.snapshots"):
        snap = await build_snapshot(ctx, serial=1, now=clock.now)
    assert set(snap.apps_by_slug) == {"echo"}
    assert snap.apps_by_host["echo.example.com"] == echo
    assert sorted(r.getMessage() for r in caplog.records) == [
        "app clash left out of the snapshot: its host echo.example.com is app echo's",
        "app sso left out of the snapshot: its host auth.example.com is the portal's "
        "(the public URL's)",
    ]


async def test_a_revocation_goes_out_after_a_clash_is_written(
    ctx: AuthzContext, clock: Clock
) -> None:
    user, app, session = await signed_in(ctx)
    publisher = SnapshotPublisher(ctx)
    await publisher.refresh()
    await ctx.store.apps.add(make_app(slug=AppSlug("clash"), host=f"{app.slug}.example.com"))
    await ctx.store.sessions.revoke_all_for_user(user.id, clock.now)  # lychgate user disable
    assert await publisher.refresh()
    assert publisher.latest is not None
    assert token_sid(session.id) in publisher.latest.revoked_sessions
    assert set(publisher.latest.apps_by_slug) == {app.slug}


async def test_an_app_no_gateway_would_read_is_left_out(
    ctx: AuthzContext, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # Rows the CLI would refuse, however they got there (an edit by hand, an older writer):
    # the gateways read the feed more strictly than the snapshot is built.
    fine = make_app()
    with_credentials = make_app(upstream="http://user:secret@127.0.0.1:9000")
    unnormalized = make_app(host="Echo.example.com")
    snap = await snapshot_with(ctx, clock, caplog, fine, with_credentials, unnormalized)
    assert set(snap.apps_by_slug) == {fine.slug}
    check_snapshot(json.loads(json.dumps(snap.to_json())))  # what a gateway does with it
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert f"app {with_credentials.slug}.upstream: is not a usable upstream URL" in said
    assert f"app {unnormalized.slug}.host: must be a normalized host name" in said
    assert "secret" not in said
