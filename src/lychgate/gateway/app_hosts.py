"""Which host each app answers on in subdomains mode, and which apps cannot have theirs.

An app answers on its own ``host`` when it has one, else on ``<slug>.<domain>``. Two apps
cannot share a host, and no app may take the portal's (the public URL's host). The store's
unique constraint covers only explicit hosts, so a clash can still be written: an explicit
host equal to another app's ``<slug>.<domain>``, or to the portal's.

A snapshot with such a clash is refused by every gateway (:class:`ConfigSnapshot`), so authz
leaves the clashing apps out of the snapshots it builds (:func:`host_clashes`), and the CLI
refuses to write one in the first place. Left out, an app's host answers 404; kept in, the
whole snapshot would fail and nothing, not even a revocation, would reach the gateways.

Which app keeps a host: one answering on its own ``<slug>.<domain>`` keeps it against another
app's explicit host (that explicit host is the override that clashes); ties cannot otherwise
happen, as slugs and explicit hosts are unique.
"""

from __future__ import annotations

from collections.abc import Iterable

from lychgate.domain import App
from lychgate.ids import AppSlug
from lychgate.tls.hosts import normalize_host, url_scheme_and_host


def app_host(app: App, app_domain: str) -> str:
    """The host ``app`` answers on in subdomains mode (``app_domain`` normalized)."""
    return app.host or f"{app.slug}.{app_domain}"


def clashes(apps: Iterable[App], *, app_domain: str, public_host: str) -> dict[AppSlug, str]:
    """The enabled apps that cannot have their host, with why (both hosts normalized)."""
    claimed: dict[str, AppSlug] = {}
    refused: dict[AppSlug, str] = {}
    enabled = [app for app in apps if app.enabled]
    for app in sorted(enabled, key=lambda a: (a.host is not None, a.slug)):
        host = app_host(app, app_domain)
        if host == public_host:
            refused[app.slug] = f"its host {host} is the portal's (the public URL's)"
        elif host in claimed:
            refused[app.slug] = f"its host {host} is app {claimed[host]}'s"
        else:
            claimed[host] = app.slug
    return refused


def host_clashes(apps: Iterable[App], *, public_url: str, domain: str) -> dict[AppSlug, str]:
    """:func:`clashes` for a deployment's settings, normalized as :class:`ConfigSnapshot` does."""
    _, public_host = url_scheme_and_host(public_url)
    return clashes(apps, app_domain=normalize_host(domain, field="domain"), public_host=public_host)
