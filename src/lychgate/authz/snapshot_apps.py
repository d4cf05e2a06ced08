"""The apps of the gateways' snapshot: the stored ones, read as they change, and which of them
can be served.

Theory of operation
-------------------
The snapshot publisher (:mod:`.snapshots`) keeps every stored app by id, as of the change
counter's value it last read. When the counter moves, :func:`read_app_changes` reads only the
apps written since (each app write records the value it moved the counter to,
``apps.changed_in``) and applies them: an app added, edited, enabled or disabled costs one
row, not five thousand (reading them all took ~0.2 s of the second within which an app change
must reach the gateways). A removal leaves no row to read: the number of apps tells of one,
and only then are the ids read, to find which. The publisher's full rebuild (every minute)
reads every app again, a safety net against a writer that does not record its changes. A
writer older than ``apps.changed_in`` (during an upgrade) bumps the counter but records
nothing: a look that finds the counter moved and no row written since, or a stored app it
does not know, reads every app, as every look did before.

:class:`AppSelection` then chooses the apps that go into the snapshot. An app that cannot be
served (a host that clashes with another app's or the portal's, one refused on plain HTTP, or
a row no gateway would read back) is left out with a warning, so that the rest (revocations
above all) still goes out. Whether a gateway reads an app back is the dearest check (~25 µs
an app): it is worked out once per version of each app and remembered, so a look after an
edit checks the one app edited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from lychgate.config import Settings
from lychgate.deployment.transport import unservable_apps
from lychgate.domain import App
from lychgate.gateway.app_hosts import host_clashes
from lychgate.gateway.snapshot_json import wire_problem
from lychgate.ids import AppId
from lychgate.store import ChangedApp, Store

log = logging.getLogger(__name__)
PAGE: Final = 1000  # apps read at a time


async def read_app_changes(
    store: Store,
    apps: dict[AppId, App],
    *,
    since: int,
    known: Mapping[AppId, App] | None = None,
) -> int:
    """Apply to ``apps`` every app write that set the change counter above ``since``, and take
    out the apps removed. Returns how many rows were read; ``since=-1`` reads every app.

    An app equal to the one ``known`` (by default ``apps``) holds goes in as that very object,
    so that a full read leaves the snapshot's unchanged apps as they were: the feed tells an
    app that changed from one that did not by identity first (:mod:`.feed_wire`)."""
    read = 0
    after: ChangedApp | None = None
    known = apps if known is None else known
    while True:
        page = await store.apps.changed_since(since, limit=PAGE, after=after)
        for change in page:
            app = change.app
            was = known.get(app.id)
            apps[app.id] = was if was == app else app
        read += len(page)
        if len(page) < PAGE:
            break
        after = page[-1]
    if since >= 0 and await store.apps.count() != len(apps):
        stored = set(await store.apps.ids())
        read += len(stored)
        if stored - apps.keys():
            # Stored apps that no recorded write told of: added by a writer older than
            # apps.changed_in (during an upgrade). Read every app.
            before = dict(known)
            apps.clear()
            return read + await read_app_changes(store, apps, since=-1, known=before)
        for gone in apps.keys() - stored:
            del apps[gone]
    return read


def _path_warning(app: App) -> str | None:
    """An upstream stored with a path (``http://h:9/sub``, which ``app add`` took before it
    refused paths) is served, as before, at ``/``: the gateway forwards the request's own
    path. Say so, with the fix, rather than leave the app out of a snapshot it used to be in."""
    if app.upstream.startswith("unix:"):
        return None
    parts = urlsplit(app.upstream)
    path = parts.path
    if path in ("", "/"):
        return None
    return (
        f"app {app.slug}: its upstream {app.upstream} has a path ({path}), which the gateway "
        f"does not add to requests; give it without: lychgate app update {app.slug} "
        f"--upstream {parts.scheme}://{parts.netloc}"
    )


class AppSelection:
    """Chooses the stored apps that a snapshot holds (module docstring), remembering for each
    version of an app whether a gateway reads it back and what to warn about it."""

    __slots__ = ("_checked",)

    def __init__(self) -> None:
        # Each app (by value) seen in the last selection: why a gateway would refuse it, or
        # None, and the warning about its upstream's path, or None.
        self._checked: dict[App, tuple[str | None, str | None]] = {}

    def select(self, settings: Settings, stored: Iterable[App]) -> tuple[App, ...]:
        """The apps of ``stored`` that can be served, by slug; a warning for each other one
        (and for each upstream with a path), at every selection. Raises
        :class:`~lychgate.errors.ConfigError` only for bad settings."""
        apps = sorted(stored, key=lambda app: app.slug)
        # Added by another process with other settings (`serve` would not start), unreadable
        # to gateways, or clashing with another app's host: left out.
        refused = unservable_apps(settings, apps)
        before, checked = self._checked, {}
        for app in apps:
            found = before.get(app)
            if found is None:
                found = (wire_problem(app), _path_warning(app))  # a row written by hand...
            checked[app] = found
            problem = found[0]
            if problem is not None:
                refused[app.slug] = problem
        self._checked = checked  # forgets the versions no longer stored
        if settings.routing == "subdomains":
            kept = [app for app in apps if app.slug not in refused]
            refused |= host_clashes(
                kept, public_url=settings.public_url, domain=settings.app_domain
            )
        for slug, why in refused.items():
            log.warning("app %s left out of the snapshot: %s", slug, why)
        served = tuple(app for app in apps if app.slug not in refused)
        for app in served:
            warning = checked[app][1]
            if warning is not None:
                log.warning("%s", warning)
        return served
