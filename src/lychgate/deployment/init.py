"""``lychgate init``: create or complete a deployment, never destroying what exists.

Two halves, because one is blocking file work and the other talks to the store:

1. :func:`prepare_files` (synchronous; call it outside an event loop): the directory, a
   commented ``lychgate.toml``, ``secrets.json`` and, for https deployments without their own
   certificate, the internal CA and a server certificate.
2. :func:`prepare_store` (async): migrations, and a signing key if there is none.

Running init again is safe: every step creates only what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lychgate.config import Settings, load_settings
from lychgate.config.paths import default_data_dir
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.layout import Layout
from lychgate.deployment.secrets import ensure_secrets
from lychgate.domain import App
from lychgate.errors import ConfigError
from lychgate.files import DIR_MODE, PRIVATE_MODE, PUBLIC_MODE, restrict_mode, write_atomic
from lychgate.ids import AppSlug, KeyId
from lychgate.store import open_store
from lychgate.tls.files import TlsPaths, ensure_tls_material
from lychgate.tls.hosts import hostnames_for, is_plain_http_allowed


@dataclass(frozen=True, slots=True)
class FilesReport:
    settings: Settings
    config_created: bool
    secrets_created: bool
    tls: TlsPaths | None


def prepare_files(
    data_dir: Path | None,
    env: Mapping[str, str],
    *,
    public_url: str | None = None,
    routing: str | None = None,
    domain: str | None = None,
    now: datetime,
) -> FilesReport:
    """Create what is missing in the deployment directory and return its settings."""
    root = (data_dir or default_data_dir(env)).expanduser().resolve()
    root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    layout = Layout(root)
    # Validate the requested values before writing anything, so a typo leaves no file behind.
    check_transport(load_settings(root, env, public_url=public_url, routing=routing, domain=domain))
    config_created = False
    if not layout.config_file.exists():
        text = config_template(public_url=public_url, routing=routing, domain=domain)
        write_atomic(layout.config_file, text.encode(), mode=PUBLIC_MODE, overwrite=False)
        config_created = True
    settings = load_settings(root, env)
    check_transport(settings)
    _, secrets_created = ensure_secrets(layout.secrets_file, now)
    _create_private_sqlite_file(settings)
    tls = None
    if settings.is_https and settings.tls_cert is None:
        names = hostnames_for(settings.public_url, settings.routing, domain=settings.domain)
        tls = ensure_tls_material(layout.tls_dir, names, now=now)
    return FilesReport(settings, config_created, secrets_created, tls)


async def prepare_store(settings: Settings, now: datetime) -> KeyId | None:
    """Migrate the store and create the first signing key. Returns a new kid, if any."""
    async with await open_store(settings.effective_database_url.reveal()) as store:
        return await ensure_signing_key(store.signing_keys, now)


def _create_private_sqlite_file(settings: Settings) -> None:
    """The SQLite file holds signing keys: create it 0600 (its -wal/-shm inherit the mode)."""
    url = settings.effective_database_url.reveal()
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            path = Path(url.removeprefix(prefix))
            if path.name and not path.exists():
                path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
            elif path.exists():
                restrict_mode(path, PRIVATE_MODE)


def check_transport(settings: Settings) -> None:
    """Plain HTTP only on loopback or ``*.localhost``, unless explicitly forced: the public
    URL, and in subdomains mode the domain the apps are served under too, which must then be
    ``localhost`` itself. On plain HTTP the cookies carry no ``__Host-`` prefix, so any page
    under a shared domain could toss its own onto an app host (THREAT_MODEL T30): browsers
    refuse a ``Domain=localhost`` cookie, but not one for ``apps.localhost``."""
    if settings.is_https or settings.allow_insecure_http:
        return
    if not is_plain_http_allowed(settings.public_url):
        raise ConfigError(
            f"{settings.public_url} is plain HTTP on a non-loopback host; use https:// "
            "(lychgate makes an internal CA) or set allow_insecure_http = true",
            field="public_url",
        )
    if settings.routing == "subdomains" and settings.app_domain != "localhost":
        raise ConfigError(
            f"apps under {settings.app_domain} would be served over plain HTTP; use an https:// "
            'public URL, domain = "localhost", or set allow_insecure_http = true',
            field="domain",
        )


def check_app_transport(settings: Settings, host: str | None) -> None:
    """An app's own ``host`` is served over plain HTTP only where the deployment's domain may
    be (see :func:`check_transport`): as ``<name>.localhost``, or when forced."""
    if not host or settings.is_https or settings.allow_insecure_http:
        return
    label, dot, parent = host.lower().rstrip(".").partition(".")
    if not (label and dot and parent == "localhost"):
        raise ConfigError(
            f"{host} would be served over plain HTTP; use an https:// public URL, a host "
            "<name>.localhost, or set allow_insecure_http = true",
            field="host",
        )


def app_hosts_restricted(settings: Settings) -> bool:
    """Whether :func:`unservable_apps` can refuse any app: on plain HTTP, unforced, in
    subdomains mode (in single-host mode an app's own host is never served)."""
    return not (settings.is_https or settings.allow_insecure_http) and (
        settings.routing == "subdomains"
    )


def unservable_apps(settings: Settings, apps: Iterable[App]) -> dict[AppSlug, str]:
    """The apps whose own host may not be served as the deployment now is, with why: where
    :func:`app_hosts_restricted`, a host other than ``<name>.localhost``
    (:func:`check_app_transport`). Stored apps are checked again because the public URL may
    have turned plain HTTP, or another process with other settings may have added one, since."""
    if not app_hosts_restricted(settings):
        return {}
    refused: dict[AppSlug, str] = {}
    for app in apps:
        try:
            check_app_transport(settings, app.host)
        except ConfigError as exc:
            refused[app.slug] = exc.message
    return refused


def check_apps_transport(settings: Settings, apps: Iterable[App]) -> None:
    """Raise for the first of :func:`unservable_apps`, naming it and how to fix it."""
    refused = unservable_apps(settings, apps)
    if refused:
        slug, why = next(iter(refused.items()))
        raise ConfigError(
            f"app {slug}: {why} (`lychgate app update {slug} --host {slug}.localhost`, or "
            "remove the app)",
            field="host",
        )


def config_template(*, public_url: str | None, routing: str | None, domain: str | None) -> str:
    """A commented lychgate.toml naming the most useful settings."""
    lines = [
        "# Lychgate settings. LYCHGATE_<NAME> environment variables override these;",
        "# nested keys use a double underscore, e.g. LYCHGATE_LIMITS__MAX_BODY_BYTES.",
        "",
        f'public_url = "{public_url or "http://localhost:8080"}"',
        f'routing = "{routing or "single-host"}"  # or "subdomains"',
    ]
    if domain:
        lines.append(f'domain = "{domain}"')
    lines += [
        '# listen = "127.0.0.1:8080"',
        '# database_url = "postgresql://lychgate@db/lychgate"  # default: SQLite here',
        "# session_ttl = 43200        # seconds",
        "# session_idle_ttl = 7200",
        "# app_token_ttl = 3600",
        "# feed_max_stale = 300       # gateways deny once authz's feed is silent this long",
        '# trusted_proxies = []       # e.g. ["10.0.0.0/8"]: trust their X-Forwarded-*',
        '# authz_trusted_gateways = ["127.0.0.0/8", "::1/128"]  # authz on TCP: its gateways',
        "# access_log = false",
        '# metrics_listen = "127.0.0.1:9090"',
        "",
        "# [limits]",
        "# max_body_bytes = 1073741824",
        "# header_timeout = 10.0",
        "# tunnel_idle_timeout = 3600.0  # a WebSocket silent both ways this long is closed",
        "",
    ]
    return "\n".join(lines)
