"""The admission decision: one pure function from a request head to what happens to it.

Theory of operation
-------------------
:func:`admit` is a function of the request head, the clock, the config snapshot and a token
verifier. It does no I/O, keeps no state, and tests call it directly (STYLE.md item 1). The
handler (:mod:`lychgate.gateway.admit_handler`) turns its :data:`Admission` into the engine's
``Decision``. In order:

1. **Target and host.** The request-target is normalized once (:mod:`~lychgate.gateway.paths`)
   and the host checked (:mod:`~lychgate.gateway.routing`); either failing is a 400 (421 for an
   SNI mismatch). Everything after this looks only at the normalized forms; under
   ``/.lychgate`` those hold no percent-escape (paths.py step 7), so what authz decodes is
   exactly what was routed here. The host carries the public URL's port from here on, never
   the one the client wrote (routing.py: web cache poisoning).
2. **Snapshot.** With no snapshot at all the gateway cannot tell apps from strangers: 503
   (only ``/.lychgate/healthz`` still answers, with its own 503). A *stale* snapshot still
   decides (DESIGN.md: keep serving on the last config); the revoked set it carries is then
   the last one the feed delivered, so a session revoked during an outage keeps working until
   its app token expires (``app_token_ttl``). That bound is the price of availability.
3. **Route.** Unknown host: 404. The gateway's endpoints and authz are returned as such;
   authz does its own authentication.
4. **Setup.** Until the first admin exists, nothing reaches an app: navigations go to authz's
   setup page, everything else gets 503.
4a. **CORS preflight.** To an app with ``allow_cross_origin`` (subdomains mode), a browser's
   preflight is a :class:`Preflight`: forwarded without a token and without identity, since a
   browser never sends credentials with one (:mod:`~lychgate.gateway.admit_origin`). Only the
   app's own head limits (step 6) apply to it.
5. **Token.** The app cookie (``__Host-lychgate`` on https, ``lychgate`` on http) must hold an
   app token whose signature verifies (cached), that has not expired, comes from our issuer,
   names the routed app (subdomains) or an enabled app (single-host), whose session is not
   revoked and whose user is in the snapshot.
6. **Policy.** An admins-only app needs ``adm`` in the token: 403 otherwise. An app's own
   ``max_header_bytes`` and ``max_headers``, where set, bound its request heads: 431 beyond.
7. **WebSocket origin** and 8. **cross-origin writes**: a handshake to an app, or a
   state-changing request to an app that does not allow cross-origin ones, that a browser says
   comes from another origin is a 403 (:mod:`~lychgate.gateway.admit_origin`). In subdomains
   mode every app is on one *site*, and the ``SameSite=Lax`` cookie does not stop a sibling
   app's page.

Without a valid token a browser navigation is redirected to the login page; anything else
(XHR, fetch, API clients, non-GET) gets a 401 JSON body naming the login URL.

Cookie tossing (SECURITY.md item 5)
-----------------------------------
The ``__Host-`` prefix already stops a sibling subdomain from planting our cookie on https. If
several values still arrive under our name, each is verified on its own (at most
:data:`MAX_COOKIE_VALUES`; more is refused outright): the request is admitted only if **exactly
one** distinct value is fully valid for this route. A planted garbage value therefore cannot
lock the user out, and a planted *valid* token for someone else's session cannot silently take
over a request that also carries the user's own: two valid tokens are ambiguous and refused.

Memo
----
A successful token check may be remembered in an :class:`~lychgate.gateway.admit_memo.AdmissionMemo`
passed by the caller (the handler keeps one per worker); see that module for why a remembered
check decides exactly as the full one would. Without a memo, :func:`admit` keeps no state.

Fail closed
-----------
Any unexpected exception while deciding becomes a 500 deny, never a forward, and an unexpected
exception while verifying one cookie value makes that value invalid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from urllib.parse import quote

from lychgate.domain import App, AppPolicy
from lychgate.errors import ClientError, TokenError
from lychgate.gateway.admit_memo import AdmissionMemo, MemoKey
from lychgate.gateway.admit_origin import (
    SAFE_METHODS,
    cors_preflight,
    foreign_handshake,
    foreign_write,
)
from lychgate.gateway.cookies import app_cookie_name, cookie_values
from lychgate.gateway.forwarding import Identity
from lychgate.gateway.paths import RequestTarget, parse_request_target
from lychgate.gateway.routing import (
    AppRoute,
    AuthzRoute,
    EndpointName,
    EndpointRoute,
    RequestHost,
    at_public_port,
    request_host,
    route,
)
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead
from lychgate.ids import AppSlug, looks_like_session_id
from lychgate.tokens import Verifier, verify_app_token
from lychgate.valuetype import value_type

#: More values than this under our cookie name is refused without verifying any.
MAX_COOKIE_VALUES: Final = 4
LOGIN_PATH: Final = "/.lychgate/login"
SETUP_PATH: Final = "/.lychgate/setup"
HEALTHZ_PATH: Final = "/.lychgate/healthz"


@value_type  # built per request: see lychgate.valuetype
class ToApp:
    """Admitted: forward to ``app`` as ``identity``."""

    app: App
    identity: Identity
    target: RequestTarget
    host: RequestHost


@value_type
class Preflight:
    """A CORS preflight for ``app``: forward it with no token and no identity (step 4a)."""

    app: App
    target: RequestTarget
    host: RequestHost


@value_type
class ToAuthz:
    """Forward to authz (control plane), which authenticates on its own."""

    target: RequestTarget
    host: RequestHost


@value_type
class ToEndpoint:
    """Run one of the gateway's own endpoints. ``app`` is the host's app in subdomains mode."""

    name: EndpointName
    target: RequestTarget
    host: RequestHost | None
    app: App | None = None


@value_type
class Redirect:
    """A 302 to ``location``: to the login page, or to setup before an admin exists."""

    location: str
    reason: str  # for logs: "setup", or "login: " and why the token did not admit


@value_type
class Deny:
    """Refused. ``error`` is the public code; ``reason`` is for logs and never sent."""

    status: int
    error: str
    login_url: str | None = None
    reason: str = ""
    identity: Identity | None = None  # whose valid token a policy refused, for the logs
    app: AppSlug | None = None  # the app whose own rule refused it, for the logs and metrics


Admission = ToApp | Preflight | ToAuthz | ToEndpoint | Redirect | Deny


def admit(
    head: RequestHead,
    *,
    now: datetime,
    snapshot: ConfigSnapshot | None,
    verifier: Verifier,
    memo: AdmissionMemo | None = None,
) -> Admission:
    """Decide what happens to ``head`` (see the module docstring). Never raises.

    ``memo`` remembers successful token checks between calls (see the module docstring).
    """
    try:
        return _admit(head, now, snapshot, verifier, memo)
    except ClientError as exc:
        error = "misdirected_request" if exc.status == 421 else "bad_request"
        return Deny(exc.status, error, reason=str(exc))
    except Exception as exc:  # fail closed: a bug must never turn into a forward
        return Deny(500, "internal_error", reason=f"admission failed: {type(exc).__name__}")


def _admit(
    head: RequestHead,
    now: datetime,
    snapshot: ConfigSnapshot | None,
    verifier: Verifier,
    memo: AdmissionMemo | None,
) -> Admission:
    target = parse_request_target(head.target)
    host = request_host(head, target)
    if snapshot is None:
        if target.path == HEALTHZ_PATH:
            return ToEndpoint("healthz", target, host)
        return Deny(503, "unavailable", reason="no config snapshot yet")
    host = at_public_port(host, snapshot.public_port)  # never the client's own port
    where = route(snapshot, host, target.path)
    if isinstance(where, EndpointRoute):
        app = snapshot.apps_by_host.get(host.name) if snapshot.routing == "subdomains" else None
        return ToEndpoint(where.name, target, host, app)
    if isinstance(where, AuthzRoute):
        return ToAuthz(target, host)
    if not isinstance(where, AppRoute):
        return Deny(404, "not_found", reason="no route: unknown host or internal path")
    if not snapshot.setup_done:
        if is_navigation(head):
            return Redirect(_control_url(snapshot, SETUP_PATH), "setup")
        return Deny(503, "setup_required", reason="no admin yet")
    opened = where.app
    if opened is not None and opened.allow_cross_origin and cors_preflight(head):
        over = over_app_head_limits(head, opened)
        if over is not None:
            too_large = "request_header_fields_too_large"
            return Deny(431, too_large, reason=over, app=opened.slug)
        return Preflight(opened, target, host)
    admitted = _find_token(head, now, snapshot, verifier, where.app, memo)
    if isinstance(admitted, str):
        return login_required(head, snapshot, host, target, reason=admitted)
    app, identity = admitted
    if app.policy is AppPolicy.ADMINS and not identity.admin:
        return Deny(403, "forbidden", reason="admins only", identity=identity, app=app.slug)
    if app.max_header_bytes is not None or app.max_headers is not None:
        over = over_app_head_limits(head, app)
        if over is not None:
            too_large = "request_header_fields_too_large"
            return Deny(431, too_large, reason=over, identity=identity, app=app.slug)
    if head.method in SAFE_METHODS:  # a plain GET: one set lookup, and for socket apps one scan
        if app.websockets and foreign_handshake(head, snapshot, host):
            why = "WebSocket handshake from another origin"
            return Deny(403, "forbidden", reason=why, identity=identity, app=app.slug)
    elif not app.allow_cross_origin:
        refused = foreign_write(head, app, snapshot, host)
        if refused is not None:
            return Deny(403, "forbidden", reason=refused, identity=identity, app=app.slug)
    return ToApp(app, identity, target, host)


def _find_token(
    head: RequestHead,
    now: datetime,
    snapshot: ConfigSnapshot,
    verifier: Verifier,
    routed: App | None,
    memo: AdmissionMemo | None,
) -> tuple[App, Identity] | str:
    """The one valid (app, identity) among our cookie's values, or why there is none."""
    headers = tuple([v for k, v in head.headers if k == "cookie"])
    if not headers:
        return "no_cookie"
    key: MemoKey | None = None
    moment = 0.0
    if memo is not None:
        key = (headers, None if routed is None else routed.slug)
        moment = now.timestamp()
        remembered = memo.lookup(snapshot, key, moment)
        if remembered is not None:
            return remembered
    name = app_cookie_name(snapshot.secure_cookies)
    values = list(dict.fromkeys(cookie_values(headers, name)))
    if not values:
        return "no_cookie"
    if len(values) > MAX_COOKIE_VALUES:
        return "too_many_cookies"
    found: list[tuple[App, Identity]] = []
    reason = ""
    for value in values:
        result = check_app_token(value, now, snapshot, verifier, routed)
        if isinstance(result, str):
            reason = result
        else:
            found.append(result)
    if len(found) > 1:
        return "ambiguous_cookies"
    if not found:
        return reason
    if key is not None and memo is not None and len(values) == 1:
        memo.store(snapshot, key, moment, *found[0])
    return found[0]


def check_app_token(
    token: str,
    now: datetime,
    snapshot: ConfigSnapshot,
    verifier: Verifier,
    routed: App | None,
) -> tuple[App, Identity] | str:
    """Verify one app token for a route; return (app, identity) or the reason it fails.

    ``routed`` is the host's app in subdomains mode, None in single-host mode (where the token
    names the app, which must be enabled in the snapshot).
    """
    try:
        claims = verify_app_token(
            verifier,
            token,
            now=now,
            issuer=snapshot.issuer,
            app=None if routed is None else routed.slug,
        )
    except TokenError as exc:
        return exc.reason
    except Exception:  # fail closed for this value only (see the module docstring)
        return "verify_error"
    app = routed if routed is not None else snapshot.apps_by_slug.get(claims.app)
    if app is None:
        return "unknown_app"
    if claims.sid in snapshot.revoked_sessions:
        return "revoked"
    if looks_like_session_id(claims.sid):
        # Signed before tokens named sessions by handle: the feed lists handles, so this one
        # would outlive a revocation. The browser signs in again, at once if authz knows it.
        return "legacy_token"
    profile = snapshot.users.get(claims.sub)
    if profile is None:
        return "unknown_user"
    identity = Identity(
        session_id=claims.sid,
        user_id=claims.sub,
        app=app.slug,
        admin=claims.adm,
        profile=profile,
        expires_at=claims.exp,
        kid=claims.kid,
    )
    return app, identity


def over_app_head_limits(head: RequestHead, app: App) -> str | None:
    """Why ``head`` is over ``app``'s own ``max_header_bytes`` or ``max_headers``, else None.

    The size is counted as the engine counts it against the listener's limit (the
    request-target, and each field's name and value plus four bytes), so an app's limit means
    the same as the listener's; it can only be lower in effect, since the engine refuses
    anything over the listener's first.
    """
    fields = head.headers
    if app.max_headers is not None and len(fields) > app.max_headers:
        return "more header fields than the app's max_headers"
    if app.max_header_bytes is not None:
        size = len(head.target) + sum(len(k) + len(v) + 4 for k, v in fields)
        if size > app.max_header_bytes:
            return "request head over the app's max_header_bytes"
    return None


def is_navigation(head: RequestHead) -> bool:
    """True for a browser's top-level GET/HEAD navigation, which may be redirected.

    ``Sec-Fetch-Mode`` (Fetch Metadata) decides when present; without it, an ``Accept`` that
    names ``text/html`` does. Everything else is a script or an API client: it gets a 401.
    """
    if head.method not in ("GET", "HEAD"):
        return False
    modes = head.header_all("sec-fetch-mode")
    if modes:
        return len(modes) == 1 and modes[0].strip().lower() == "navigate"
    return "text/html" in ",".join(head.header_all("accept")).lower()


def login_url(snapshot: ConfigSnapshot, host: RequestHost, target: RequestTarget) -> str:
    """The login page, with ``rd`` naming where to come back to.

    single-host: a same-origin ``/.lychgate/login?rd=<path>``. subdomains: the portal's login
    page, with ``rd`` the full URL on this app host (authz checks it against the served hosts).
    """
    if snapshot.routing == "single-host":
        back = target.origin_form
    else:
        back = snapshot.origin_for(host.name) + target.origin_form
    return _control_url(snapshot, f"{LOGIN_PATH}?rd={quote(back, safe='/:')}")


def login_required(
    head: RequestHead,
    snapshot: ConfigSnapshot,
    host: RequestHost,
    target: RequestTarget,
    *,
    reason: str,
) -> Redirect | Deny:
    """A redirect to the login page for a navigation, a 401 for anything else."""
    url = login_url(snapshot, host, target)
    if is_navigation(head):
        return Redirect(url, f"login: {reason}")
    return Deny(401, "login_required", login_url=url, reason=reason)


def _control_url(snapshot: ConfigSnapshot, path: str) -> str:
    """A URL of authz's pages: same-origin in single-host mode, on the portal otherwise."""
    if snapshot.routing == "single-host":
        return path
    return snapshot.public_origin + path
