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


def foreign_handshake(head: RequestHead, snapshot: ConfigSnapshot, host: RequestHost) -> bool:
    """Step 7: an Upgrade whose ``Origin`` names another origin (absent ``Origin``: allowed)."""
    if head.header("upgrade") is None:
        return False
    return names_another_origin(head, snapshot, host)


_QUOTED_MAX: Final = 120  # characters of a client's header values that a reason may carry


def quoted(values: list[str]) -> str:
    """Header values as a reason for the logs may quote them: escaped, and cut short (a
    client chooses them, and could otherwise write kilobytes into every log line)."""
    text = repr(values)
    return text if len(text) <= _QUOTED_MAX else text[: _QUOTED_MAX - 3] + "..."


def names_another_origin(head: RequestHead, snapshot: ConfigSnapshot, host: RequestHost) -> bool:
    """An ``Origin`` field that is not exactly the routed host's own origin (absent: False)."""
    origins = head.header_all("origin")
    return bool(origins) and _another_origin(origins, snapshot, host)


def foreign_write(
    head: RequestHead, app: App, snapshot: ConfigSnapshot, host: RequestHost
) -> str | None:
    """Step 8, for a method outside :data:`SAFE_METHODS` to an app that does not allow
    cross-origin writes: why it is refused, else None."""
    origins = head.header_all("origin")
    if origins:
        if not _another_origin(origins, snapshot, host):
            return None
        said = f"Origin {quoted(origins)}"
    else:
        sites = head.header_all("sec-fetch-site")
        if not (len(sites) > 1 or any(site.strip().lower() in _ELSEWHERE for site in sites)):
            return None
        said = f"Sec-Fetch-Site {quoted(sites)}"
    return (
        f"{head.method} to app {app.slug!r} from another origin ({said}); if the app expects "
        f"that, run: lychgate app update {app.slug} --allow-cross-origin"
    )


def _another_origin(origins: list[str], snapshot: ConfigSnapshot, host: RequestHost) -> bool:
    """True unless ``origins`` is exactly one value, the routed host's own origin."""
    if len(origins) > 1:
        return True
    return origin_of(origins[0].strip()) != origin_of(snapshot.origin_for(host.name))
