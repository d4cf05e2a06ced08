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

CORS preflights (:func:`cors_preflight`)
----------------------------------------
Before a cross-origin request that is not a "simple" one (PUT, DELETE, a JSON
``Content-Type``...), a browser asks the app with a *CORS-preflight request*, and sends the
real request only if the app's answer allows it. The Fetch standard defines it (section
"HTTP requests", ``#http-requests``): "A CORS request is an HTTP request that includes an
``Origin`` header", and a CORS-preflight request is a CORS request that "uses ``OPTIONS`` as
method and includes the following header: ``Access-Control-Request-Method``". And it never
carries the user's cookie: "a CORS-preflight request never includes credentials" (section
"CORS protocol and credentials"; "CORS-preflight fetch" builds it as a new request, which
takes neither the real request's credentials mode nor its cookies). So an app that serves a
CORS API to other origins (``allow_cross_origin``) could never be asked: the gateway answered
every preflight 401 for want of a cookie, and the browser then refused the real request.

For such an app alone (in subdomains mode, where the host names the app without a token),
admission forwards a preflight *anonymously* (:class:`~lychgate.gateway.admission.Preflight`):
no token is looked at, no identity header is sent, and the app's own CORS code answers. The
real request that follows still needs a valid token like any other. The test is narrow and
fails closed: anything unlike what a browser sends is not a preflight, and is decided as
before (a 401 without a valid cookie):

* method ``OPTIONS``;
* exactly one ``Origin``, a serialized origin (``scheme://host[:port]``, http or https). Not
  ``null`` (an opaque origin, whose page gets no ``SameSite=Lax`` cookie for the real request
  either), nor several fields;
* exactly one ``Access-Control-Request-Method``, a method (an RFC 9110 token);
* no content (a preflight has no body: no ``Transfer-Encoding``, a ``Content-Length`` of 0 at
  most) and no ``Upgrade`` (a forbidden request-header name in Fetch, which a browser never
  sends), so an anonymous request can neither carry data to the app nor open a tunnel.

Which origins may ask is the app's to decide, as it decides for its cross-origin writes
(step 8 does not look at the ``Origin`` of an app with ``allow_cross_origin``): the gateway
does not narrow it to the deployment's own hosts. That would stop no one, since any client
may write any ``Origin``; the guard for the real request is the token, and a page of another
site gets no ``SameSite=Lax`` cookie for it.
"""

from __future__ import annotations

import re
from typing import Final

from lychgate.domain import App
from lychgate.gateway.admit_redirect import origin_of
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_ELSEWHERE: Final = frozenset({"same-site", "cross-site"})  # Sec-Fetch-Site values
_METHOD: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 section 9.1: a token


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


def cors_preflight(head: RequestHead) -> bool:
    """True for a CORS-preflight request as a browser sends it (see the module docstring)."""
    if head.method != "OPTIONS":
        return False
    origins = head.header_all("origin")
    if len(origins) != 1 or origin_of(origins[0].strip(" \t")) is None:
        return False
    asked = head.header_all("access-control-request-method")
    if len(asked) != 1 or _METHOD.fullmatch(asked[0].strip(" \t")) is None:
        return False
    lengths = head.header_all("content-length")
    if any(length.strip(" \t") != "0" for length in lengths):
        return False
    return head.header("transfer-encoding") is None and head.header("upgrade") is None
