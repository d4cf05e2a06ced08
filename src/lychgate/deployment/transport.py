"""Whether the deployment can be served as configured: plain HTTP only on this machine
(unless forced), app hosts that the transport and the internal CA's certificate can serve.
init and serve check the deployment, and ``lychgate app`` each app's host, before anything
starts; authz leaves out of the snapshot a stored app these checks refuse."""

from __future__ import annotations

from collections.abc import Iterable

from lychgate.config import Settings
from lychgate.deployment.apps import check_host
from lychgate.domain import App
from lychgate.errors import ConfigError, LychgateError
from lychgate.ids import AppSlug
from lychgate.tls.hosts import hostnames_for, is_plain_http_allowed


def internal_ca_names(settings: Settings) -> list[str] | None:
    """The names the internal CA's server certificate covers; None without the internal CA
    (plain HTTP, or the operator's own ``tls_cert``)."""
    if not settings.is_https or settings.tls_cert is not None:
        return None
    return hostnames_for(settings.public_url, settings.routing, domain=settings.domain)


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


def check_app_certificate(settings: Settings, host: str | None) -> None:
    """On the internal CA, refuse an app host that its server certificate does not cover.

    That certificate names only :func:`internal_ca_names` (``<domain>``, ``*.<domain>`` and
    the portal's host), and the CA itself is name-constrained to them
    (:mod:`lychgate.tls.constraints`): browsers would refuse any other host however the app is
    set up, so say so now rather than at the first visit. With the operator's own certificate
    (``tls_cert``) the host is theirs to cover, and in single-host mode it is never served.
    """
    names = internal_ca_names(settings)
    if not host or names is None or settings.routing != "subdomains":
        return
    wanted = check_host(host)  # as the store will hold it
    parent = wanted.partition(".")[2]
    if wanted in names or f"*.{parent}" in names:
        return
    raise ConfigError(
        f"{host} is not covered by the internal CA, which certifies only {', '.join(names)}: "
        f"give the app a host <name>.{settings.app_domain} (or none: <slug>.{settings.app_domain}"
        "), or set tls_cert and tls_key to a certificate of your own that covers it",
        field="host",
    )


def uncovered_apps(settings: Settings, apps: Iterable[App]) -> dict[AppSlug, str]:
    """The apps whose own host the internal CA's certificate does not cover, with why
    (:func:`check_app_certificate`): stored before the deployment's domain changed, say.
    They are served, but browsers refuse their certificate."""
    refused: dict[AppSlug, str] = {}
    for app in apps:
        try:
            check_app_certificate(settings, app.host)
        except LychgateError as exc:  # a row written by hand may not even be a host name
            refused[app.slug] = exc.message
    return refused


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
