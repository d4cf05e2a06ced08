"""The endpoints the gateway answers itself: callback, logout and health.

* ``GET /.lychgate/start?app=<slug>&rd=<path>`` begins a handoff to this host's app: it sets
  the sign-in state cookie (keeping a well-formed one the browser already has) and 303s to
  authz's ``/.lychgate/open/<slug>`` with ``rd`` and the state (:mod:`.signin_state`). In
  subdomains mode the host names the app, and ``app``, when given, must agree.
* ``GET /.lychgate/callback?code=...&rd=...&state=...`` finishes the one-time code handoff
  (DESIGN.md flow 4). ``rd`` is checked *first* with
  :func:`~lychgate.gateway.admit_redirect.safe_redirect` (same-origin paths only, SECURITY.md
  item 1): a refused ``rd`` redirects to ``/`` without redeeming the code or setting a cookie.
  ``state`` must equal the state cookie, or the code is spent unused (a page that made the
  callback fail could otherwise read it in the URL): only the browser that
  started this sign-in at ``start`` can finish it, so no other site can plant its own code
  (login CSRF). Then the code is redeemed at authz over the back channel, the returned app
  token is verified here as admission would (signature, expiry, app of this host, not revoked)
  and only then stored in the cookie, and the state cookie is cleared. It must be a
  navigation (from any site: see the method). A request whose state does not match but that
  already carries a valid app cookie here (another tab finished the same sign-in first) is
  sent on to ``rd``, spending nothing; any other gets a page that links back to ``rd``.
* ``/.lychgate/logout`` clears the app cookie and asks authz to revoke the session named by a
  token that verifies, then redirects to ``/``. Only a navigation by a page of this origin
  may (``Sec-Fetch-Site``, ``Sec-Fetch-Dest``, ``Origin``): another site, a sibling app's
  page or an ``<img>`` cannot sign the user out. If authz cannot be
  reached the answer is a 502 that says the user is still signed in, and the cookies stay:
  the session lives on at authz, and clearing them would leave a retry nothing to revoke
  (it then looked like a sign-out that worked).
* ``/.lychgate/healthz``: 200 ``ok`` while a snapshot is loaded and the feed has confirmed it
  within ``max_stale`` seconds, 503 otherwise (a load balancer then stops sending us traffic
  that would be refused anyway). Nothing else.

Errors answer fixed texts (400, 502, 503): never an exception message or an address.
"""

from __future__ import annotations

import html
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

from lychgate.errors import ClientError
from lychgate.gateway import admit_responses as responses
from lychgate.gateway.admission import MAX_COOKIE_VALUES, ToEndpoint, check_app_token
from lychgate.gateway.admit_origin import names_another_origin, quoted
from lychgate.gateway.admit_redirect import app_path, safe_redirect
from lychgate.gateway.authz_client import AuthzBusy, AuthzClient
from lychgate.gateway.cookies import (
    app_cookie_name,
    clear_app_cookie,
    clear_cookie,
    cookie_values,
    session_cookie_name,
    set_app_cookie,
)
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.paths import is_reserved
from lychgate.gateway.routing import RequestHost
from lychgate.gateway.signin_state import (
    app_to_start,
    open_location,
    set_state_cookie,
    state_cookie_name,
    state_mismatch,
    state_to_keep,
)
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder
from lychgate.gateway.types import Local, RequestHead, Respond
from lychgate.ids import SessionId, UserId
from lychgate.request_log import CURRENT
from lychgate.tokens import verify_app_token

log = logging.getLogger(__name__)

_CODE: Final = re.compile(r"[A-Za-z0-9_-]{16,256}")
_MAX_QUERY_FIELDS: Final = 8
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,128}")
# Where a browser may come from to these endpoints (Sec-Fetch-Site; "none": typed, bookmarked).
_FROM_HERE: Final = frozenset({"same-origin", "none"})
_ANY_SITE: Final = _FROM_HERE | {"same-site", "cross-site"}


def _not_from_this_page(
    head: RequestHead,
    sites_ok: frozenset[str],
    snapshot: ConfigSnapshot | None,
    host: RequestHost | None,
) -> str | None:
    """Why a request to the callback or logout is refused as one that a page of another
    origin made, or that is not a navigation at all (an ``<img>``, a ``fetch()``), else None.
    Browsers say so in ``Sec-Fetch-Site``, ``Sec-Fetch-Dest`` and ``Origin``; a client that
    sends none of them (a script, an old browser) is let through."""
    sites = head.header_all("sec-fetch-site")
    if sites and (len(sites) != 1 or sites[0].strip().lower() not in sites_ok):
        return f"from another site (Sec-Fetch-Site {quoted(sites)})"
    dests = head.header_all("sec-fetch-dest")
    if dests and (len(dests) != 1 or dests[0].strip().lower() != "document"):
        return f"not a navigation (Sec-Fetch-Dest {quoted(dests)})"
    if snapshot is not None and host is not None and names_another_origin(head, snapshot, host):
        return "from another origin"
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)


class Endpoints:
    """The gateway's own endpoints, bound to a snapshot holder and an authz client."""

    __slots__ = ("_authz", "_clock", "_failures", "_holder", "_max_stale")

    def __init__(
        self,
        holder: SnapshotHolder,
        authz: AuthzClient,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_stale: float = math.inf,
    ) -> None:
        self._holder = holder
        self._authz = authz
        self._clock = clock
        self._max_stale = max_stale
        # Anyone can make these calls fail (a made-up code, a flood): one line per kind in 10 s.
        self._failures = Throttle(time.monotonic)

    def _snapshot(self) -> ConfigSnapshot | None:
        """The current snapshot, unless the feed has not confirmed it within ``max_stale``."""
        holder = self._holder
        return None if holder.is_stale(self._max_stale) else holder.current

    def _get_snapshot(self, head: RequestHead) -> ConfigSnapshot | Respond:
        """The snapshot for a GET-only endpoint, or the answer when it cannot run: 405 to any
        other method, 503 without a confirmed snapshot."""
        if head.method != "GET":
            return responses.text(
                405, "method not allowed\n", headers=(("allow", "GET"),), rid=head.rid
            )
        snapshot = self._snapshot()
        if snapshot is None:
            return responses.text(503, "unavailable\n", reason="no config snapshot", rid=head.rid)
        return snapshot

    def local(self, admission: ToEndpoint) -> Local:
        """The engine's :class:`~lychgate.gateway.types.Local` for an admitted endpoint."""

        async def run(head: RequestHead) -> Respond:
            CURRENT.set(head.rid)  # this task's log lines name the request (request_log)
            try:
                if admission.name == "callback":
                    return await self.callback(head, admission)
                if admission.name == "start":
                    return self.start(head, admission)
                if admission.name == "logout":
                    return await self.logout(head, admission)
                return await self.healthz(head)
            except Exception:  # fail closed, and say nothing about why
                log.exception("gateway endpoint %s failed", admission.name)
                return responses.text(
                    500, "internal error\n", reason="endpoint failed", rid=head.rid
                )

        return Local(run, admission.name)

    async def healthz(self, head: RequestHead) -> Respond:
        """200 while a confirmed snapshot is loaded, 503 otherwise. Reveals nothing else."""
        if self._snapshot() is None:
            return responses.text(503, "unavailable\n", reason="no config snapshot", rid=head.rid)
        return responses.text(200, "ok\n")

    async def callback(self, head: RequestHead, admission: ToEndpoint) -> Respond:
        """Redeem ``code``, set the app cookie, redirect to the same-origin ``rd``."""
        snapshot = self._get_snapshot(head)
        if isinstance(snapshot, Respond):
            return snapshot
        params = _query(admission.target.query)
        if params is None:
            return responses.text(400, "bad request\n", reason="callback: bad query", rid=head.rid)
        # A page elsewhere must not plant a code of its own (login CSRF: the user would then
        # work in the app as someone else). The sign-in state below is what stops it, from any
        # site: a link from another site into an app leads here through login, start and open,
        # and the browser calls every step of that chain cross-site. This refuses only what is
        # not a navigation (an <img>, a fetch()).
        refused = _not_from_this_page(head, _ANY_SITE, snapshot, admission.host)
        if refused is not None:
            return responses.text(403, "forbidden\n", reason=f"callback: {refused}", rid=head.rid)
        codes, rds = params.get("code", []), params.get("rd", ["/"])
        if len(codes) != 1 or len(rds) != 1 or not _CODE.fullmatch(codes[0]):
            return responses.text(
                400, "bad request\n", reason="callback: bad code or rd", rid=head.rid
            )
        target = safe_redirect(rds[0])
        if target is None:  # SECURITY.md item 1: no code spent, no cookie
            return responses.redirect("/", reason="callback: rd is not a same-origin path")
        if is_reserved(target.partition("?")[0]):  # authz never sends one: a crafted link
            return responses.redirect("/", reason="callback: rd is under /.lychgate")
        mismatch = state_mismatch(head, params.get("state", []), snapshot.secure_cookies)
        if mismatch is not None:
            # The code is spent all the same: a page that made this browser's callback fail
            # (single-host mode: an app's page, which shares this origin, can change the state
            # cookie) could otherwise read the code in this URL and redeem it elsewhere.
            await self._burn(codes[0], head.rid)
            # Two tabs that began a sign-in together share one state, and the first to finish
            # clears it: the other holds a good app cookie by now.
            if self._app_sessions(head, snapshot, admission):
                return responses.redirect(target, reason=f"callback: {mismatch}; signed in")
            return responses.html_page(
                400,
                "This sign-in was not started in this browser, or it took too long. "
                f'<a href="{html.escape(target)}">Open the app again</a> to sign in.',
                reason=f"callback: {mismatch}",
                rid=head.rid,
            )
        try:
            token = await self._authz.redeem_code(codes[0], rid=head.rid)
        except ClientError:
            return responses.text(
                400,
                "the sign-in link is invalid or has expired\n",
                reason="callback: authz refused the code",
                rid=head.rid,
            )
        except Exception as exc:
            unavailable = "sign-in is unavailable, try again\n"
            return self._authz_failed("callback: code redemption", exc, head, unavailable)
        return self._store_token(head, snapshot, admission, token, target)

    async def _burn(self, code: str, rid: str) -> None:
        """Redeem ``code`` and drop the token: it must not outlive a refused callback."""
        try:
            await self._authz.redeem_code(code, rid=rid)
        except Exception as exc:  # refused already, or authz away: nothing more to do
            log.debug("burning a refused callback's code: %s", type(exc).__name__)

    def _store_token(
        self,
        head: RequestHead,
        snapshot: ConfigSnapshot,
        admission: ToEndpoint,
        token: str,
        target: str,
    ) -> Respond:
        now = self._clock()
        checked = check_app_token(token, now, snapshot, snapshot.keyring, admission.app)
        if isinstance(checked, str):
            log.warning("authz handed over an app token that does not verify here: %s", checked)
            return responses.text(
                400,
                "the sign-in link is invalid or has expired\n",
                reason=f"callback: the app token does not verify: {checked}",
                rid=head.rid,
            )
        _, identity = checked
        max_age = int((identity.expires_at - now).total_seconds())
        secure = snapshot.secure_cookies
        cookies = (
            ("set-cookie", set_app_cookie(token, secure=secure, max_age=max_age)),
            ("set-cookie", clear_cookie(state_cookie_name(secure), secure=secure)),
        )
        return responses.redirect(target, headers=cookies)

    def start(self, head: RequestHead, admission: ToEndpoint) -> Respond:
        """Set the sign-in state cookie, then 303 to authz's ``open`` for this app."""
        snapshot = self._get_snapshot(head)
        if isinstance(snapshot, Respond):
            return snapshot
        params = _query(admission.target.query)
        refused = _not_from_this_page(head, _ANY_SITE, None, None)  # a navigation, from anywhere
        if refused is not None:
            return responses.text(403, "forbidden\n", reason=f"start: {refused}", rid=head.rid)
        if params is None or len(params.get("app", [])) > 1 or len(params.get("rd", [])) > 1:
            return responses.text(400, "bad request\n", reason="start: bad query", rid=head.rid)
        app = app_to_start(snapshot, admission.app, params.get("app", []))
        if app is None:
            return responses.text(
                404, "no such app\n", reason="start: no such app here", rid=head.rid
            )
        target = app_path(params.get("rd", ["/"])[0])
        secure = snapshot.secure_cookies
        state = state_to_keep(head, secure)
        return responses.redirect(
            open_location(snapshot, app, target, state),
            status=303,
            headers=(("set-cookie", set_state_cookie(state, secure=secure)),),
        )

    async def logout(self, head: RequestHead, admission: ToEndpoint) -> Respond:
        """Clear the cookie, revoke the session at authz, redirect to ``/``."""
        if head.method not in ("GET", "POST"):
            return responses.text(
                405, "method not allowed\n", headers=(("allow", "GET, POST"),), rid=head.rid
            )
        snapshot = self._holder.current
        # Only this origin's own pages sign out, by a link or a form: not a sibling app's
        # page, nor an <img> in any page (which would end the whole session for everyone's
        # content that can embed one).
        refused = _not_from_this_page(head, _FROM_HERE, snapshot, admission.host)
        if refused is not None:
            return responses.text(403, "forbidden\n", reason=f"logout: {refused}", rid=head.rid)
        secure = snapshot.secure_cookies if snapshot is not None else head.scheme == "https"
        clear = (
            ("set-cookie", clear_app_cookie(secure=secure)),
            ("set-cookie", clear_cookie(session_cookie_name(secure), secure=secure)),
        )
        sessions = [] if snapshot is None else self._sessions(head, snapshot, admission)
        try:
            for session_id, user_id in sessions:
                await self._authz.revoke_session(session_id, user_id, rid=head.rid)
        except Exception as exc:
            unavailable = "sign-out could not be completed: you are still signed in; try again\n"
            return self._authz_failed("logout: session revocation", exc, head, unavailable)
        return responses.redirect("/", headers=clear)

    def _authz_failed(
        self, what: str, exc: Exception, head: RequestHead, unavailable: str
    ) -> Respond:
        """The answer when a call to authz failed: 503 while this worker's calls are at their
        cap (:class:`~.authz_client.AuthzBusy`), else 502 saying ``unavailable``; logged at
        most once per kind every 10 s, with how many more there were."""
        kind = type(exc).__name__
        more = self._failures.due((what, kind))
        if more is not None:
            log.warning("%s failed: %s%s", what, kind, more)
        reason = f"{what} failed: {kind}"
        if isinstance(exc, AuthzBusy):
            return responses.text(
                503,
                "busy; try again in a moment\n",
                headers=(("retry-after", "1"),),
                reason=reason,
                rid=head.rid,
            )
        return responses.text(502, unavailable, reason=reason, rid=head.rid)

    def _app_sessions(
        self, head: RequestHead, snapshot: ConfigSnapshot, admission: ToEndpoint
    ) -> dict[tuple[SessionId, UserId | None], None]:
        """The sessions named by the request's app cookies that admission would take here:
        each by its handle, with its user."""
        now = self._clock()
        found: dict[tuple[SessionId, UserId | None], None] = {}
        name = app_cookie_name(snapshot.secure_cookies)
        for value in cookie_values(head.header_all("cookie"), name)[:MAX_COOKIE_VALUES]:
            checked = check_app_token(value, now, snapshot, snapshot.keyring, admission.app)
            if not isinstance(checked, str):
                identity = checked[1]
                found[identity.session_id, identity.user_id] = None
            elif checked == "legacy_token":
                # Signed before tokens named sessions by handle: its sid is the session's id,
                # which authz takes as it takes a sign-in cookie's value.
                found[_legacy_sid(value, now, snapshot), None] = None
        return found

    def _sessions(
        self, head: RequestHead, snapshot: ConfigSnapshot, admission: ToEndpoint
    ) -> list[tuple[SessionId, UserId | None]]:
        """The sessions named by the valid app tokens in the request's cookie (by handle, with
        the token's user), and, on the portal's host (single-host mode), by authz's
        auth-session cookie: a user who signed in but never opened an app holds only the
        latter, and logout must end it too. Its value is the session id itself (no user);
        authz ignores ids it does not know."""
        found = self._app_sessions(head, snapshot, admission)
        cookies = head.header_all("cookie")
        for value in cookie_values(cookies, session_cookie_name(snapshot.secure_cookies))[:4]:
            if _SESSION_ID.fullmatch(value):
                found[SessionId(value), None] = None
        return list(found)


def _legacy_sid(token: str, now: datetime, snapshot: ConfigSnapshot) -> SessionId:
    """The ``sid`` of a token that :func:`check_app_token` found good but for naming its session
    by id (``legacy_token``): so verified already."""
    return verify_app_token(snapshot.keyring, token, now=now, issuer=snapshot.issuer).sid


def _query(query: str | None) -> dict[str, list[str]] | None:
    """Decode a query strictly (UTF-8, few fields); None if it does not decode."""
    if not query:
        return {}
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=_MAX_QUERY_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    return params
