"""``lychgate app add/update`` refuse a host the portal or another app answers on.

The store's unique constraint covers only explicit hosts; an app also answers on
``<slug>.<domain>``, and no app may answer on the portal's host. A clash written anyway is left
out of every snapshot by authz (tests/authz/test_snapshot_host_clashes.py); this refuses it
before it is written, naming the app it would clash with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.test_cli import lychgate
from fixtures.store import T0
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import build_snapshot
from lychgate.config import Settings, load_settings
from lychgate.deployment.apps import AppSpec, add_app, update_app
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets
from lychgate.errors import Conflict
from lychgate.events import InProcessBus
from lychgate.gateway.routing import AppRoute, NoRoute, RequestHost, route
from lychgate.store import Store

SUBDOMAINS = {
    "LYCHGATE_PUBLIC_URL": "https://auth.example.com",
    "LYCHGATE_ROUTING": "subdomains",
    "LYCHGATE_DOMAIN": "example.com",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, SUBDOMAINS)


def spec(slug: str, host: str | None = None) -> AppSpec:
    return AppSpec(slug=slug, name=slug.title(), upstream="http://127.0.0.1:3000", host=host)


@pytest.mark.parametrize(
    ("slug", "host", "message"),
    [
        ("clash", "echo.example.com", "app clash: its host echo.example.com is app echo's"),
        (
            "sso",
            "AUTH.example.com.",
            "app sso: its host auth.example.com is the portal's (the public URL's)",
        ),
        ("metrics", None, "app metrics would take app grafana's host: give it another with --host"),
    ],
    ids=["another app's slug host", "the portal's host", "its slug host is another's"],
)
async def test_a_clashing_host_is_refused(
    store: Store, settings: Settings, slug: str, host: str | None, message: str
) -> None:
    await add_app(store, spec("echo"), T0, settings=settings)
    await add_app(store, spec("grafana", "metrics.example.com"), T0, settings=settings)
    with pytest.raises(Conflict) as info:
        await add_app(store, spec(slug, host), T0, settings=settings)
    assert (info.value.field, info.value.message) == ("host", message)
    assert await store.apps.get_by_slug(slug) is None  # type: ignore[arg-type]


async def test_an_update_to_a_clashing_host_is_refused(store: Store, settings: Settings) -> None:
    await add_app(store, spec("echo"), T0, settings=settings)
    wiki = await add_app(store, spec("wiki", "docs.example.com"), T0, settings=settings)
    with pytest.raises(Conflict):
        await update_app(store, "wiki", {"host": "echo.example.com"}, T0, settings=settings)
    assert await store.apps.get(wiki.id) == wiki
    # Its own host again, or a free one: fine.
    await update_app(store, "wiki", {"host": "docs.example.com"}, T0, settings=settings)
    moved = await update_app(store, "wiki", {"host": "kb.example.com"}, T0, settings=settings)
    assert moved.host == "kb.example.com"


async def test_a_disabled_app_keeps_its_host(store: Store, settings: Settings) -> None:
    echo = await add_app(store, spec("echo"), T0, settings=settings)
    assert await store.apps.set_enabled(echo.slug, False)
    with pytest.raises(Conflict):
        await add_app(store, spec("clash", "echo.example.com"), T0, settings=settings)


@pytest.fixture
def single(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, {"LYCHGATE_PUBLIC_URL": "http://localhost:8080"})


@pytest.fixture
def secrets(tmp_path: Path) -> DeploymentSecrets:
    return ensure_secrets(tmp_path / "secrets.json", T0)[0]


async def test_single_host_mode_routes_on_no_app_host(
    store: Store, single: Settings, secrets: DeploymentSecrets
) -> None:
    """In single-host mode an app's host routes nothing, so a host that would be another's in
    subdomains mode is no clash: both apps are kept, and the app is the token's."""
    await add_app(store, spec("echo"), T0, settings=single)
    await add_app(store, spec("clash", "echo.localhost"), T0, settings=single)
    assert sorted(app.slug for app in await store.apps.list()) == ["clash", "echo"]
    await ensure_signing_key(store.signing_keys, T0)
    bus = InProcessBus()
    try:
        ctx = AuthzContext(settings=single, store=store, bus=bus, secrets=secrets)
        snap = await build_snapshot(ctx, serial=1, now=T0)
    finally:
        await bus.close()
    assert set(snap.apps_by_slug) == {"echo", "clash"}  # neither left out as a clash
    assert snap.apps_by_host == {}  # no host is looked up
    for path in ("/", "/page"):
        assert route(snap, RequestHost("localhost", 8080), path) == AppRoute(None)
        assert route(snap, RequestHost("echo.localhost", 8080), path) == NoRoute()


def test_the_cli_says_which_app_has_the_host(data_dir: Path) -> None:
    d = str(data_dir)
    code, out = lychgate(
        "init", "--dir", d, "--public-url", "https://auth.example.com",
        "--routing", "subdomains", "--domain", "example.com",
    )  # fmt: skip
    assert code == 0, out
    add = ("app", "add", "--dir", d, "--name", "X", "--upstream", "http://127.0.0.1:3000")
    assert lychgate(*add, "--slug", "echo")[0] == 0
    code, out = lychgate(*add, "--slug", "clash", "--host", "echo.example.com")
    assert code != 0
    assert "app clash: its host echo.example.com is app echo's" in " ".join(out.split())
    code, out = lychgate("app", "list", "--dir", d, "--json")
    assert code == 0
    assert '"clash"' not in out
