"""Validating an app's definition before it reaches the store.

An app is a route from the gateway to an upstream. A definition is checked once, here, and the
gateway trusts what the store holds: every rule that protects routing lives in this module, or
for the upstream itself in :mod:`lychgate.deployment.upstream_urls`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from lychgate.config.settings import (
    MAX_BODY_BYTES,
    MAX_IDLE_TIMEOUT,
    MAX_UPSTREAM_TIMEOUT,
    Settings,
)
from lychgate.deployment.upstream_urls import check_upstream
from lychgate.deployment.users import is_plain_text
from lychgate.domain import (
    APP_HEADER_BYTES_RANGE,
    APP_HEADERS_RANGE,
    App,
    AppPolicy,
    AuditEvent,
)
from lychgate.errors import ClientError, Conflict, NotFound
from lychgate.gateway.app_hosts import host_clashes
from lychgate.ids import AppId, AppSlug, new_id
from lychgate.tls.hosts import url_scheme_and_host

if TYPE_CHECKING:
    from lychgate.store import Store

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Slugs the product itself uses, or that would be confusing as app hosts.
RESERVED_SLUGS = frozenset({"admin", "auth", "lychgate", "portal", "www"})
# An app's own limits replace the listener's ([limits] in lychgate.toml), with the same bounds
# (config.settings): an app may be given any value the listener may, and none it may not.
APP_BODY_BYTES_RANGE: Final = (0, MAX_BODY_BYTES)


@dataclass(frozen=True, slots=True)
class AppSpec:
    """What an operator asks for; :func:`build_app` checks it and makes an :class:`App`."""

    slug: str
    name: str
    upstream: str
    host: str | None = None
    policy: str = AppPolicy.ANY_USER.value
    websockets: bool = False
    description: str = ""
    icon: str = ""
    verify_tls: bool = True
    connect_timeout: float | None = None  # None: the gateway's default
    read_timeout: float | None = None
    max_body_bytes: int | None = None
    allow_cross_origin: bool = False
    max_header_bytes: int | None = None  # None: the listener's limits
    max_headers: int | None = None
    idle_timeout: float | None = None


def build_app(spec: AppSpec, *, app_id: AppId | None = None) -> App:
    """Validate ``spec``; raise :class:`ClientError` naming the bad field."""
    return App(
        id=app_id or AppId(new_id("app_")),
        slug=AppSlug(check_slug(spec.slug)),
        name=_check_name(spec.name),
        upstream=check_upstream(spec.upstream),
        host=check_host(spec.host) if spec.host else None,
        policy=_check_policy(spec.policy),
        websockets=spec.websockets,
        description=_check_description(spec.description),
        icon=spec.icon.strip()[:200],
        verify_tls=spec.verify_tls,
        connect_timeout=_seconds(spec.connect_timeout, MAX_UPSTREAM_TIMEOUT, "connect_timeout"),
        read_timeout=_seconds(spec.read_timeout, MAX_UPSTREAM_TIMEOUT, "read_timeout"),
        max_body_bytes=_within(spec.max_body_bytes, APP_BODY_BYTES_RANGE, "max_body_bytes"),
        allow_cross_origin=spec.allow_cross_origin,
        max_header_bytes=_within(spec.max_header_bytes, APP_HEADER_BYTES_RANGE, "max_header_bytes"),
        max_headers=_within(spec.max_headers, APP_HEADERS_RANGE, "max_headers"),
        idle_timeout=_seconds(spec.idle_timeout, MAX_IDLE_TIMEOUT, "idle_timeout"),
    )


def _within(value: int | None, bounds: tuple[int, int], field: str) -> int | None:
    low, high = bounds
    if value is not None and not low <= value <= high:
        raise ClientError(f"must be between {low} and {high}", field=field)
    return value


def _seconds(value: float | None, most: float, field: str) -> float | None:
    """More than 0 and at most ``most`` seconds, as the listener's own (NaN is neither)."""
    if value is not None and not (math.isfinite(value) and 0 < value <= most):
        raise ClientError(f"must be more than 0 and at most {most:g} seconds", field=field)
    return value


def check_slug(slug: str) -> str:
    if not _SLUG.fullmatch(slug):
        raise ClientError(
            "use 1-40 lower-case letters, digits and inner hyphens (it becomes a host label)",
            field="slug",
        )
    if slug in RESERVED_SLUGS:
        raise ClientError(f"{slug!r} is reserved", field="slug")
    return slug


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or not is_plain_text(name):
        raise ClientError("give a display name of 1-100 printable characters", field="name")
    return name


def _check_description(description: str) -> str:
    # As for names: a bidi override let "Pay\u202eroll" show as "Payllor" on the portal.
    if not is_plain_text(description):
        raise ClientError(
            "give a description of printable characters (no control or bidi characters)",
            field="description",
        )
    return description.strip()[:500]


def _check_policy(policy: str) -> AppPolicy:
    try:
        return AppPolicy(policy)
    except ValueError:
        choices = ", ".join(p.value for p in AppPolicy)
        raise ClientError(f"must be one of: {choices}", field="policy") from None


def check_host(host: str) -> str:
    """A bare DNS name, normalized: lower case, no port, no trailing dot."""
    normalized = host.strip().lower().rstrip(".")
    _refuse_port(normalized)
    labels = normalized.split(".")
    if len(normalized) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ClientError("must be a DNS name such as app.example.com (no port)", field="host")
    return normalized


def _refuse_port(host: str) -> None:
    """An app's host is matched without a port (browsers use the public URL's): say so,
    rather than the general "must be a DNS name" or a transport complaint about it."""
    name, colon, port = host.rpartition(":")
    if colon and name and ":" not in name and (not port or port.isdigit()):
        raise ClientError(
            f"a host has no port: give {name} (browsers reach it on the public URL's port)",
            field="host",
        )


def check_host_not_portal(host: str, settings: Settings) -> None:
    """In subdomains mode, refuse the portal's own host (the public URL's) for an app, before
    any other check of it: that is what is wrong with it, whatever else would be said about
    it (``localhost`` is not even a name of two labels). :func:`check_host_free` finds it
    too, but only once the rest has passed."""
    if settings.routing != "subdomains":
        return
    _, portal = url_scheme_and_host(settings.public_url)
    name, colon, port = host.strip().lower().rpartition(":")
    if not (colon and port.isdigit()):  # "localhost:8080" is the portal's host too
        name = host.strip().lower()
    if name.rstrip(".") == portal:
        raise ClientError(
            f"{host} is the portal's host (the public URL's): give the app another, such as "
            f"<name>.{settings.app_domain}, or no --host for <slug>.{settings.app_domain}",
            field="host",
        )


async def check_host_free(store: Store, app: App, settings: Settings) -> None:
    """In subdomains mode, refuse ``app`` if it would answer on the portal's host or on
    another app's, or take another app's host from it (:mod:`lychgate.gateway.app_hosts`).

    Disabled apps count: they keep their host for when they are enabled again. The store
    cannot check this (it knows only explicit hosts), and authz would have to leave one of
    the two apps out of every snapshot."""
    if settings.routing != "subdomains":
        return  # an app's host is never routed on
    others = [replace(a, enabled=True) for a in await store.apps.list() if a.id != app.id]

    def refused(apps: list[App]) -> dict[AppSlug, str]:
        return host_clashes(apps, public_url=settings.public_url, domain=settings.app_domain)

    after = refused([*others, replace(app, enabled=True)])
    if app.slug in after:
        raise Conflict(f"app {app.slug}: {after[app.slug]}", field="host")
    before = refused(others)
    taken = [slug for slug in after if slug not in before]
    if taken:
        raise Conflict(
            f"app {app.slug} would take app {taken[0]}'s host: give it another with --host",
            field="host",
        )


async def add_app(
    store: Store, spec: AppSpec, now: datetime, *, settings: Settings | None = None
) -> App:
    """Validate and store a new app, and record it in the audit log. With ``settings``, its
    host is checked against the other apps' and the portal's (:func:`check_host_free`)."""
    app = build_app(spec)
    if settings is not None:
        await check_host_free(store, app, settings)
    try:
        await store.apps.add(app)
    except Conflict as exc:
        what = app.host if exc.field == "host" else app.slug
        raise Conflict(f"an app with {exc.field} {what!r} exists", field=exc.field) from None
    await store.audit.append(_audit("app.added", app, now))
    return app


def spec_of(app: App) -> AppSpec:
    """The spec that :func:`build_app` would turn into ``app`` (to change a field and rebuild)."""
    same = {f.name: getattr(app, f.name) for f in fields(AppSpec) if f.name != "policy"}
    return AppSpec(**same, policy=app.policy.value)


async def update_app(
    store: Store,
    slug: str,
    changes: Mapping[str, Any],
    now: datetime,
    *,
    settings: Settings | None = None,
) -> App:
    """Change some of an app's settings (``AppSpec`` field names), checked as when adding it.

    The slug stays (tokens name it); gateways pick the change up with the next snapshot.
    """
    app = await store.apps.get_by_slug(AppSlug(slug))
    if app is None:
        raise NotFound(f"no app {slug!r}", field="slug")
    if "slug" in changes:
        raise ClientError("an app's slug cannot change; add a new app instead", field="slug")
    updated = replace(
        build_app(replace(spec_of(app), **changes), app_id=app.id), enabled=app.enabled
    )
    if settings is not None and "host" in changes:
        await check_host_free(store, updated, settings)
    try:
        await store.apps.update(updated)
    except Conflict as exc:
        raise Conflict(
            f"an app with {exc.field} {updated.host!r} exists", field=exc.field
        ) from None
    await store.audit.append(_audit("app.updated", updated, now))
    return updated


async def set_app_enabled(
    store: Store,
    slug: str,
    enabled: bool,
    now: datetime,
    *,
    settings: Settings | None = None,
    check: Callable[[App], None] | None = None,
) -> tuple[App, bool]:
    """Disable an app, or enable it again; returns it and whether this call changed it.

    A disabled app keeps its definition and its host (:func:`check_host_free`), but gateways
    no longer route to it (only enabled apps are in ``ConfigSnapshot.apps_by_slug``): they
    refuse its requests and close its open WebSockets and streams
    (:mod:`lychgate.gateway.access_changes`) once the write, which moves the config change
    counter, reaches them. An app that already is as asked is left alone: no write, no audit
    event. With ``settings``, enabling checks the host again first, since the portal or an
    app may answer on it by now (a new public URL or domain, a row written by hand), and
    ``check`` (the CLI's transport and certificate checks, as ``add`` runs them) too. The switch
    is one conditional UPDATE, which no concurrent ``update_app`` undoes.
    """
    app = await store.apps.get_by_slug(AppSlug(slug))
    if app is None:
        raise NotFound(f"no app {slug!r}", field="slug")
    if app.enabled == enabled:
        return app, False
    switched = replace(app, enabled=enabled)
    if enabled and settings is not None:
        await check_host_free(store, switched, settings)
    if enabled and check is not None:
        check(switched)
    if not await store.apps.set_enabled(app.slug, enabled):
        return await _current(store, app.slug), False  # another command switched it first
    await store.audit.append(_audit("app.enabled" if enabled else "app.disabled", switched, now))
    return switched, True


async def _current(store: Store, slug: AppSlug) -> App:
    app = await store.apps.get_by_slug(slug)
    if app is None:
        raise NotFound(f"no app {slug!r}", field="slug")
    return app


async def remove_app(store: Store, slug: str, now: datetime) -> App:
    """Remove an app by slug (NotFound if absent), and record it in the audit log."""
    app = await store.apps.get_by_slug(AppSlug(slug))
    if app is None:
        raise NotFound(f"no app {slug!r}", field="slug")
    await store.apps.remove(app.slug)
    await store.audit.append(_audit("app.removed", app, now))
    return app


def _audit(action: str, app: App, now: datetime) -> AuditEvent:
    details = {"slug": app.slug, "upstream": app.upstream}
    return AuditEvent(None, now, action, None, None, None, details)
