"""An upstream stored with a path is served, as before, and authz says the path is not used.

``app add`` took ``http://h:9/sub`` before it refused paths, and the gateway forwards the
request's own path (``/x``, not ``/sub/x``). Leaving such an app out of the snapshot would break
a deployment on upgrade; serving it silently hid the misunderstanding. authz warns, with the fix.
"""

from __future__ import annotations

import pytest

from authz.conftest import Clock
from authz.snapshot_apps import snapshot_with
from fixtures.store import make_app
from lychgate.authz.context import AuthzContext


async def test_a_path_in_a_stored_upstream_is_warned_about_and_the_app_served(
    ctx: AuthzContext, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    prefixed = make_app(upstream="http://127.0.0.1:9001/sub")
    plain = make_app(upstream="http://127.0.0.1:9002/")
    socket = make_app(upstream="unix:/run/app/app.sock")
    snap = await snapshot_with(ctx, clock, caplog, prefixed, plain, socket)
    assert {prefixed.slug, plain.slug, socket.slug} <= set(snap.apps_by_slug)
    assert [r.getMessage() for r in caplog.records] == [
        f"app {prefixed.slug}: its upstream http://127.0.0.1:9001/sub has a path (/sub), which "
        "the gateway does not add to requests; give it without: lychgate app update "
        f"{prefixed.slug} --upstream http://127.0.0.1:9001"
    ]
