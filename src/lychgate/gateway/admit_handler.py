"""The gateway's :class:`~lychgate.gateway.types.Handler`: admission, then the engine's Decision.

:func:`~lychgate.gateway.admission.admit` decides; this module only carries the decision into
the engine's terms: a :class:`Forward` with the rewritten headers (:mod:`.forwarding`) and a
signed identity assertion, a :class:`Local` endpoint, or a small :class:`Respond`. It keeps the
per-worker caches that must follow the snapshot: the token verification cache (emptied when the
key set changes), the memo of admitted cookies (emptied when a new snapshot changes more than
the sessions to end, see :mod:`.admit_memo`), the assertion signer (replaced when the assertion
key or issuer changes) and the upstream of each app.

A snapshot the feed has not confirmed for ``stale_after`` seconds is *stale*. Requests are still
decided on it (DESIGN.md: keep serving on the last config; see the bound this puts on
revocation in :mod:`.admission`), but the handler logs the change into and out of that state
(looking at most once a second, not on every request) and exposes it as
:attr:`GatewayHandler.stale` for health and metrics. Past ``max_stale`` seconds
(``feed_max_stale``, 5 minutes by default) the snapshot is *expired*: requests are decided as if
there were none, so everything but the health check is refused with a 503 until the feed
confirms a snapshot again (SECURITY.md item 9: a stale feed denies). The bound is what a
revocation that never reached this gateway can cost.

Fail closed: an exception anywhere here is logged and answered with a 500; an app request
without an assertion key in the snapshot is refused with a 503 (SECURITY.md item 9: a missing
key denies), since the upstream's only trustworthy identity would be missing.

A CORS :class:`~lychgate.gateway.admission.Preflight` goes to its app with no identity at all:
the client's identity headers stripped as always, none of ours added, no principal on the
:class:`Forward` (so the access log names no user, and the upstream pool never puts it on a
connection that served a user), no upgrade and no content (a body is a 413). It is refused
like any app request while the snapshot lacks its assertion key: apps get nothing from a
broken snapshot.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from lychgate.config.settings import IpNetwork, Settings
from lychgate.domain import App
from lychgate.errors import ClientError
from lychgate.gateway import admit_responses as responses
from lychgate.gateway.admission import (
    Admission,
    Deny,
    Preflight,
    Redirect,
    ToApp,
    ToAuthz,
    ToEndpoint,
    admit,
)
from lychgate.gateway.admit_assertions import CachedAssertions
from lychgate.gateway.admit_memo import AdmissionMemo
from lychgate.gateway.cookies import drop_lychgate_set_cookies
from lychgate.gateway.endpoints import Endpoints, utc_now
from lychgate.gateway.feed_http import authz_base
from lychgate.gateway.forwarding import Identity, forward_headers
from lychgate.gateway.http.failures import Throttle
from lychgate.gateway.http.limits import CONTROL_PLANE_MAX_BODY, SIGN_IN_MAX_BODY
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder
from lychgate.gateway.trusted_proxies import TrustedPeers
from lychgate.gateway.types import Decision, Forward, RequestHead, Respond, Upstream
from lychgate.ids import AppSlug
from lychgate.tokens import CachedVerifier, VerifiedJWS
from lychgate.tokens.errors import Reason, fail

log = logging.getLogger(__name__)
_FEED_EXPIRED = "config feed silent past feed_max_stale"
_STALE_CHECK_EVERY = 1.0  # seconds, on the feed's monotonic clock
# On a 503 the gateway can do nothing about yet (no snapshot: starting, or the feed silent past
# feed_max_stale; no assertion key): when a client may ask again. A heartbeat comes every 5 s.
_RETRY_AFTER = ("retry-after", "5")
STALE_AFTER: Final = 30.0  # six missed heartbeats


def stale_after(max_stale: float) -> float:
    """When a silent feed is worth a warning: after six missed heartbeats, or two thirds of
    ``max_stale`` when that comes first. With ``feed_max_stale = 15`` the warning used to come
    fifteen seconds after the requests were refused, saying they were still served."""
    return min(STALE_AFTER, max_stale * 2 / 3)


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """What the handler needs from the gateway's own settings (not from the feed)."""

    authz: Upstream
    trusted_proxies: tuple[IpNetwork, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    stale_after: float = STALE_AFTER
    max_stale: float = 300.0  # then deny: see the module docstring
    # Request content passed to authz: its own cap, or the listener's when that is lower, but
    # never under what sign-in itself sends (a listener at 0, apps raising it, must still let
    # browsers and devices sign in).
    authz_max_body: int = CONTROL_PLANE_MAX_BODY

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayOptions:
        limits = settings.limits
        authz = Upstream(
            authz_base(settings.effective_authz_listen),
            connect_timeout=limits.upstream_connect_timeout,
            read_timeout=limits.upstream_read_timeout,
        )
        return cls(
            authz=authz,
            trusted_proxies=TrustedPeers(settings.trusted_proxies),
            connect_timeout=limits.upstream_connect_timeout,
            read_timeout=limits.upstream_read_timeout,
            stale_after=stale_after(settings.feed_max_stale),
            max_stale=float(settings.feed_max_stale),
            authz_max_body=max(
                min(limits.max_body_bytes, CONTROL_PLANE_MAX_BODY), SIGN_IN_MAX_BODY
            ),
        )

    def upstream(self, app: App) -> Upstream:
        """Where ``app``'s requests go, with its own timeouts where it sets them."""
        return Upstream(
            app.upstream,
            verify_tls=app.verify_tls,
            connect_timeout=app.connect_timeout or self.connect_timeout,
            read_timeout=app.read_timeout or self.read_timeout,
        )


class GatewayHandler:
    """A :class:`~lychgate.gateway.types.Handler` over a :class:`SnapshotHolder`. One per worker."""

    __slots__ = (
        "_assertions",
        "_clock",
        "_denials",
        "_endpoints",
        "_expired",
        "_holder",
        "_memo",
        "_options",
        "_seen",
        "_stale",
        "_stale_check_at",
        "_ticks",
        "_upstreams",
        "_verifier",
    )

    def __init__(
        self,
        holder: SnapshotHolder,
        options: GatewayOptions,
        endpoints: Endpoints,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._holder = holder
        self._options = options
        self._endpoints = endpoints
        self._clock = clock
        self._seen: ConfigSnapshot | None = None
        self._verifier: CachedVerifier | None = None
        self._memo = AdmissionMemo()
        self._assertions: CachedAssertions | None = None
        self._upstreams: Mapping[AppSlug, Upstream] = {}
        self._stale = False
        self._expired = False
        # When to look at the feed's age again, on the clock that age is on: a wall clock
        # stepped back would have put the next look off by as much, serving past max_stale.
        self._ticks = holder.clock
        self._stale_check_at = -math.inf
        self._denials = Throttle(time.monotonic)

    @property
    def stale(self) -> bool:
        """True while serving on a snapshot the feed has not confirmed for ``stale_after`` s."""
        holder = self._holder
        return holder.current is not None and holder.is_stale(self._options.stale_after)

    def __call__(self, head: RequestHead) -> Decision:
        try:
            snapshot = self._holder.current
            now = self._clock()
            if snapshot is not None:
                if snapshot is not self._seen:
                    self._follow(snapshot)
                tick = self._ticks()
                if tick >= self._stale_check_at:
                    self._stale_check_at = tick + _STALE_CHECK_EVERY
                    self._note_staleness()
                if self._expired:
                    snapshot = None  # older than max_stale: as good as none
            verifier = self._verifier
            admission = admit(
                head,
                now=now,
                snapshot=snapshot,
                verifier=verifier if verifier is not None else _NO_KEYS,
                memo=self._memo,
            )
            if self._expired and isinstance(admission, Deny):
                # It has a snapshot, too old to trust: not "none yet", as at start.
                admission = replace(admission, reason=_FEED_EXPIRED)
            return self._carry_out(head, admission, now)
        except Exception:
            log.exception("request handling failed")
            return responses.deny(500, "internal_error", None, reason="request handling failed")

    @property
    def expired(self) -> bool:
        """True while requests are refused because the feed has been silent past max_stale."""
        return self._expired

    def _note_staleness(self) -> None:
        holder, options = self._holder, self._options
        stale = holder.is_stale(options.stale_after)
        if stale != self._stale:
            self._stale = stale
            if stale:
                log.warning("config feed silent: serving on the last snapshot")
            else:
                log.info("config feed confirmed the snapshot again")
        expired = holder.is_stale(options.max_stale)
        if expired != self._expired:
            self._expired = expired
            if expired:
                log.error(
                    "config feed silent for over %.0f s: refusing requests until it is back",
                    options.max_stale,
                )
            else:
                log.info("config feed is back: serving again")

    def _follow(self, snapshot: ConfigSnapshot) -> None:
        """Bring the per-snapshot caches up to date (once per new snapshot, not per request)."""
        self._memo.follow(snapshot)  # it would on its own at the next lookup; this frees it now
        if self._verifier is None:
            self._verifier = CachedVerifier(snapshot.keyring)
        else:
            self._verifier.update_keys(snapshot.keyring)
        keyring = snapshot.assertion_keyring
        current = self._assertions
        if keyring is None:
            self._assertions = None
        elif current is None or (current.kid, current.issuer) != (
            keyring.signer.kid,
            snapshot.issuer,
        ):
            self._assertions = CachedAssertions(keyring, snapshot.issuer)
        self._upstreams = {
            slug: self._options.upstream(app) for slug, app in snapshot.apps_by_slug.items()
        }
        self._seen = snapshot
        self._stale_check_at = -math.inf  # a new snapshot: look at the feed's age again now

    def _carry_out(self, head: RequestHead, admission: Admission, now: datetime) -> Decision:
        if isinstance(admission, ToApp):
            return self._to_app(head, admission, admission.identity, now)
        if isinstance(admission, Preflight):
            return self._to_app(head, admission, None, now)
        if isinstance(admission, ToAuthz):
            try:
                headers = forward_headers(
                    head,
                    admission.host,
                    trusted_proxies=self._options.trusted_proxies,
                    strip_cookies=False,  # authz owns the lychgate cookies
                )
            except ClientError as exc:
                return responses.deny(400, "bad_request", head, reason=str(exc))
            return Forward(
                self._options.authz,
                admission.target.origin_form,
                headers,
                app=None,
                # authz serves no WebSocket: an Upgrade to it is refused here (403), so no
                # cross-site page can open a socket on the control plane (SECURITY.md item 10).
                allow_upgrade=False,
                max_body_bytes=self._options.authz_max_body,  # 413 here: authz reads bodies whole
            )
        if isinstance(admission, ToEndpoint):
            return self._endpoints.local(admission)
        if isinstance(admission, Redirect):
            return responses.redirect(admission.location, reason=admission.reason)
        if admission.status >= 500 and not self._expired:  # expiry is logged once, not per request
            # Any client can cause these (every request before setup, or before a snapshot):
            # one line per reason every few seconds, not one per request.
            more = self._denials.due((admission.status, admission.reason))
            if more is not None:
                log.warning("denied with %d: %s%s", admission.status, admission.reason, more)
        elif admission.status == 403:  # a signed-in user refused: tell the operator why
            who = admission.identity
            if who is None:
                log.info("refused with 403: %s", admission.reason)
            else:
                log.info("refused with 403: %s (user %s)", admission.reason, who.user_id)
        denied = responses.deny(
            admission.status,
            admission.error,
            head,
            login_url=admission.login_url,
            reason=admission.reason,
            who=admission.identity,
        )
        if admission.app is not None:
            denied = replace(denied, app=admission.app)
        return _try_again_later(denied) if admission.error == "unavailable" else denied

    def _to_app(
        self,
        head: RequestHead,
        admitted: ToApp | Preflight,
        identity: Identity | None,
        now: datetime,
    ) -> Decision:
        """The request forwarded to its app: as ``identity``, or with none (a CORS preflight:
        no identity headers, no upgrade, no content)."""
        app = admitted.app
        assertions = self._assertions
        upstream = self._upstreams.get(app.slug)
        if assertions is None or upstream is None:
            why = "no assertion key in the snapshot" if assertions is None else "no upstream"
            log.warning("%s: refusing the requests of app %s", why, app.slug)
            return _try_again_later(responses.deny(503, "unavailable", head, reason=why))
        try:
            headers = forward_headers(
                head,
                admitted.host,
                trusted_proxies=self._options.trusted_proxies,
                identity=() if identity is None else assertions.headers(identity, now),
            )
        except ClientError as exc:
            return responses.deny(400, "bad_request", head, reason=str(exc))
        return Forward(
            upstream,
            admitted.target.origin_form,
            headers,
            app=app.slug,
            allow_upgrade=identity is not None and app.websockets,
            # A preflight has no content: admission let none through.
            max_body_bytes=app.max_body_bytes if identity is not None else 0,
            idle_timeout=app.idle_timeout,
            response_fields=drop_lychgate_set_cookies,  # no app sets our cookies
            who=identity,  # None for a preflight: none in the access log either
        )


def _try_again_later(denied: Respond) -> Respond:
    """``denied`` with a ``Retry-After`` (see :data:`_RETRY_AFTER`)."""
    return replace(denied, headers=(*denied.headers, _RETRY_AFTER))


class _NoKeys:
    """The verifier before any snapshot: nothing verifies (admit answers 503 first anyway)."""

    def verify(self, token: str, typ: str) -> VerifiedJWS:
        fail(Reason.UNKNOWN_KID, "no verification keys yet")


_NO_KEYS = _NoKeys()
