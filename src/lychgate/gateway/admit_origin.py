"""Admission steps 7 and 8: requests that a page of another origin makes as the user.

In subdomains mode every app is on one *site* (``wiki.example.com`` and ``chat.example.com``
share ``example.com``), so the ``SameSite=Lax`` cookie of app B rides along on requests that a
page of app A, or any page on the site, makes to B. A cross-*site* page gets no cookie for
such requests, and so no access; a same-site page does. Two kinds of request would let that
page act as the user, and the gateway refuses both with a 403 before they reach the app:

7. **WebSocket handshakes** to an app that allows upgrades, whose ``Origin`` is not the app's
   own origin (another origin, ``null``, or several fields). No CORS stands in front of a
   socket (cross-site WebSocket hijacking). A browser always names the origin of a handshake;
   one without ``Origin`` (a CLI, a script with the cookie) is left to the token.
8. **State-changing requests** (any method but GET, HEAD and OPTIONS) to an app that does not
   set ``allow_cross_origin``, when the browser says they come from elsewhere: an ``Origin``
   that is not the app's own (or ``null``, or several), or, without ``Origin``,
   ``Sec-Fetch-Site: same-site`` or ``cross-site``. That is cross-site request forgery
   between sibling apps, which ``SameSite=Lax`` does not stop. The app's own forms and
   fetches carry its origin and pass; a request with neither field (curl, scripts) is left to
   the token, since forging a request as the user takes a browser, and browsers send them.
   An app that serves a CORS API to sibling apps sets ``allow_cross_origin`` and then checks
   ``Origin`` (or CSRF tokens) itself.

Reads (GET) are not checked: a cross-origin ``fetch`` cannot read the answer without the app's
own CORS consent, and navigations between apps are normal.
"""

from __future__ import annotations

from typing import Final

from lychgate.domain import App
from lychgate.gateway.admit_redirect import origin_of
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_ELSEWHERE: Final = frozenset({"same-site", "cross-site"})  # Sec-Fetch-Site values


def foreign_origin(
    head: RequestHead, app: App, snapshot: ConfigSnapshot, host: RequestHost
) -> str | None:
    """Why ``head`` is refused as a request from another origin (steps 7, 8); else None."""
    if head.method in SAFE_METHODS:
        upgrade = app.websockets and head.header("upgrade") is not None
        if upgrade and _names_another_origin(head, snapshot, host):
            return "WebSocket handshake from another origin"
        return None  # the usual case: a method check, and a field scan only for socket apps
    if app.allow_cross_origin:
        return None
    if _names_another_origin(head, snapshot, host):
        said = f"Origin {head.header_all('origin')!r}"
    elif not head.header_all("origin") and _fetched_from_elsewhere(head):
        said = f"Sec-Fetch-Site {head.header_all('sec-fetch-site')!r}"
    else:
        return None
    return (
        f"{head.method} to app {app.slug!r} from another origin ({said}); if the app expects "
        f"that, run: lychgate app update {app.slug} --allow-cross-origin"
    )


def _names_another_origin(head: RequestHead, snapshot: ConfigSnapshot, host: RequestHost) -> bool:
    """True when ``Origin`` is present and is not exactly the routed host's own origin."""
    origins = head.header_all("origin")
    if not origins:
        return False
    if len(origins) > 1:
        return True
    return origin_of(origins[0].strip()) != origin_of(snapshot.origin_for(host.name))


def _fetched_from_elsewhere(head: RequestHead) -> bool:
    """True when ``Sec-Fetch-Site`` says another origin's page made the request."""
    sites = head.header_all("sec-fetch-site")
    return len(sites) > 1 or any(site.strip().lower() in _ELSEWHERE for site in sites)
