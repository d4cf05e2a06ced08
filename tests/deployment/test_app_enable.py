"""``set_app_enabled``: an operator takes an app offline and brings it back, as it was.

A disabled app stays in the store (with its host) but leaves what gateways route: the snapshot
authz builds no longer admits it, so gateways refuse it and close what it has open. How a
gateway closes open WebSockets and streams when an app leaves the snapshot is tested in
tests/gateway/test_access_changes.py ("app removed or disabled") and test_tunnel.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from fixtures.store import T0, make_user
from lychgate.authz.context import AuthzContext
from lychgate.authz.snapshots import build_snapshot
from lychgate.config import Settings, load_settings
from lychgate.deployment.apps import AppSpec, add_app, set_app_enabled
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.secrets import DeploymentSecrets, ensure_secrets
from lychgate.domain import App, User
from lychgate.errors import ConfigError, Conflict, NotFound
from lychgate.events import InProcessBus
from lychgate.gateway.access_changes import admission_refusal
from lychgate.gateway.forwarding import Identity
from lychgate.gateway.routing import AppRoute, NoRoute, RequestHost, route
from lychgate.gateway.snapshot import ConfigSnapshot, UserProfile
from lychgate.ids import AppSlug, SessionId
from lychgate.store import Store

SUBDOMAINS = {
    "LYCHGATE_PUBLIC_URL": "https://auth.example.com",
    "LYCHGATE_ROUTING": "subdomains",
    "LYCHGATE_DOMAIN": "example.com",
}
WIKI_HOST = RequestHost("wiki.example.com")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Loaded outside the event loop: reading lychgate.toml is blocking file I/O."""
    return load_settings(tmp_path, SUBDOMAINS)


@pytest.fixture
def secrets(tmp_path: Path) -> DeploymentSecrets:
    return ensure_secrets(tmp_path / "secrets.json", T0)[0]


@pytest.fixture
async def ctx(
    store: Store, settings: Settings, secrets: DeploymentSecrets
) -> AsyncIterator[AuthzContext]:
    await ensure_signing_key(store.signing_keys, T0)
    bus = InProcessBus()
    try:
        yield AuthzContext(settings=settings, store=store, bus=bus, secrets=secrets)
    finally:
        await bus.close()


@pytest.fixture
async def wiki(store: Store, settings: Settings) -> App:
    spec = AppSpec(slug="wiki", name="Wiki", upstream="http://127.0.0.1:3000", websockets=True)
    return await add_app(store, spec, T0, settings=settings)


@pytest.fixture
async def ada(store: Store) -> User:
    user = make_user()
    await store.users.add(user)
    return user


def open_tunnel(user: User) -> Identity:
    """Who a WebSocket to the wiki, opened while it was enabled, is from."""
    return Identity(
        session_id=SessionId("sess-1"),
        user_id=user.id,
        app=AppSlug("wiki"),
        admin=False,
        profile=UserProfile(name=user.name),
        expires_at=T0 + timedelta(hours=1),
    )


async def snapshot(ctx: AuthzContext) -> ConfigSnapshot:
    return await build_snapshot(ctx, serial=1, now=T0)


async def test_disabling_stops_the_gateways_routing_to_it(
    store: Store, ctx: AuthzContext, wiki: App, ada: User
) -> None:
    before = await store.config_changes.version()
    assert before is not None
    disabled, changed = await set_app_enabled(store, "wiki", False, T0)
    assert changed
    assert disabled == replace(wiki, enabled=False)
    assert await store.apps.get(wiki.id) == disabled  # kept, with its settings
    after = await store.config_changes.version()
    assert after is not None
    assert after > before  # gateways hear of it at their next poll
    (event, _added) = await store.audit.list(action_prefix="app.")
    assert (event.action, event.at, event.details["slug"]) == ("app.disabled", T0, "wiki")

    snap = await snapshot(ctx)
    assert "wiki" not in snap.apps_by_slug
    assert route(snap, WIKI_HOST, "/") == NoRoute()
    refuse = admission_refusal(snap)
    assert refuse(AppSlug("wiki"), open_tunnel(ada), True) == "app removed or disabled"


async def test_enabling_brings_it_back_as_it_was(
    store: Store, ctx: AuthzContext, wiki: App, ada: User
) -> None:
    await set_app_enabled(store, "wiki", False, T0)
    before = await store.config_changes.version()
    assert before is not None
    enabled, changed = await set_app_enabled(store, "wiki", True, T0 + timedelta(minutes=1))
    assert changed
    assert enabled == wiki
    assert await store.apps.get(wiki.id) == wiki
    after = await store.config_changes.version()
    assert after is not None
    assert after > before
    actions = [e.action for e in await store.audit.list(action_prefix="app.")]
    assert actions == ["app.enabled", "app.disabled", "app.added"]

    snap = await snapshot(ctx)
    assert snap.apps_by_slug[AppSlug("wiki")] == wiki
    assert route(snap, WIKI_HOST, "/") == AppRoute(wiki)
    assert admission_refusal(snap)(AppSlug("wiki"), open_tunnel(ada), True) is None


@pytest.mark.parametrize("enabled", [False, True], ids=["disable twice", "enable an enabled"])
async def test_asking_for_what_already_is_changes_nothing(
    store: Store, wiki: App, enabled: bool
) -> None:
    if not enabled:
        await set_app_enabled(store, "wiki", False, T0)
    stored = await store.apps.get(wiki.id)
    version = await store.config_changes.version()
    events = await store.audit.list()
    again, changed = await set_app_enabled(store, "wiki", enabled, T0 + timedelta(minutes=1))
    assert not changed
    assert again == stored
    assert again.enabled is enabled
    assert await store.apps.get(wiki.id) == stored
    assert await store.config_changes.version() == version  # no write: gateways rebuild nothing
    assert await store.audit.list() == events


@pytest.mark.parametrize("enabled", [False, True])
async def test_an_unknown_app_is_not_found(store: Store, enabled: bool) -> None:
    with pytest.raises(NotFound) as info:
        await set_app_enabled(store, "nope", enabled, T0)
    assert (info.value.field, info.value.message) == ("slug", "no app 'nope'")
    assert await store.audit.list() == []


@pytest.fixture
def moved(tmp_path: Path) -> Settings:
    """The deployment after its public URL moved onto the host an app had."""
    return load_settings(
        tmp_path, {**SUBDOMAINS, "LYCHGATE_PUBLIC_URL": "https://login.example.com"}
    )


async def test_enabling_checks_the_host_is_still_free(
    store: Store, settings: Settings, moved: Settings
) -> None:
    """A disabled app keeps its host from other apps, but not from the portal: here the public
    URL moved onto it meanwhile. Enabled, authz would leave the app out of every snapshot (or
    the portal would be unreachable), so the enable is refused, naming why, and it stays off."""
    spec = AppSpec(
        slug="sso", name="SSO", upstream="http://127.0.0.1:3000", host="login.example.com"
    )
    sso = await add_app(store, spec, T0, settings=settings)
    await set_app_enabled(store, "sso", False, T0)
    with pytest.raises(Conflict) as info:
        await set_app_enabled(store, "sso", True, T0, settings=moved)
    assert info.value.field == "host"
    assert "its host login.example.com is the portal's" in info.value.message
    assert await store.apps.get(sso.id) == replace(sso, enabled=False)
    latest = (await store.audit.list(action_prefix="app."))[0]
    assert latest.action == "app.disabled"
    # Under the settings it was added with, its host is still its own.
    enabled, changed = await set_app_enabled(store, "sso", True, T0, settings=settings)
    assert changed
    assert enabled == sso


async def test_enabling_runs_the_check_the_cli_gives_and_stays_off_when_it_refuses(
    store: Store,
) -> None:
    # The CLI passes add's transport and certificate checks: a deployment that moved (plain
    # http, another domain) since the app was disabled must not take it back unchecked.
    await add_app(store, AppSpec(slug="wiki", name="Wiki", upstream="http://127.0.0.1:3000"), T0)
    await set_app_enabled(store, "wiki", False, T0)

    def refuse(app: App) -> None:
        raise ConfigError(f"{app.slug}: not covered", field="host")

    with pytest.raises(ConfigError):
        await set_app_enabled(store, "wiki", True, T0, check=refuse)
    app = await store.apps.get_by_slug(AppSlug("wiki"))
    assert app is not None
    assert not app.enabled
