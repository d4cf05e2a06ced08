"""authz leaves out of the snapshot an app whose own host may not be served on plain HTTP.

``lychgate app add`` checks the host with the settings of the process that runs it, and
``serve`` checks stored apps when it starts; but another process (a CLI with other settings, or
a replica sharing a PostgreSQL store) can add one while authz runs. authz's own settings then
decide, on every snapshot: such an app is not served (its host gets 404), and authz says why.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from authz.conftest import Clock
from fixtures.store import make_app
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import build_snapshot
from lychgate.config import Settings, load_settings

PLAIN_SUBDOMAINS = {
    "LYCHGATE_PUBLIC_URL": "http://auth.localhost:8080",
    "LYCHGATE_ROUTING": "subdomains",
    "LYCHGATE_DOMAIN": "localhost",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:  # overrides authz/conftest.py's
    return load_settings(tmp_path, PLAIN_SUBDOMAINS)


async def test_an_app_on_a_shared_domain_is_left_out_on_plain_http(
    ctx: AuthzContext, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fine = make_app(host="metrics.localhost")
    shared = make_app(host="grafana.corp.test")  # as a CLI with allow_insecure_http adds it
    plain = make_app()  # served as <slug>.localhost
    for app in (fine, shared, plain):
        await ctx.store.apps.add(app)
    with caplog.at_level(logging.WARNING, logger="lychgate.authz.snapshots"):
        snap = await build_snapshot(ctx, serial=1, now=clock.now)
    assert set(snap.apps_by_slug) == {fine.slug, plain.slug}
    assert "grafana.corp.test" not in snap.apps_by_host
    assert [r.getMessage() for r in caplog.records] == [
        f"app {shared.slug} left out of the snapshot: grafana.corp.test would be served over "
        "plain HTTP; use an https:// public URL, a host <name>.localhost, or set "
        "allow_insecure_http = true"
    ]


async def test_forced_plain_http_serves_it(ctx: AuthzContext, clock: Clock) -> None:
    forced = replace(ctx, settings=ctx.settings.model_copy(update={"allow_insecure_http": True}))
    shared = make_app(host="grafana.corp.test")
    await ctx.store.apps.add(shared)
    snap = await build_snapshot(forced, serial=1, now=clock.now)
    assert shared.slug in snap.apps_by_slug
