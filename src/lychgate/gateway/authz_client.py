"""The gateway's back channel to authz: redeeming handoff codes and revoking sessions.

:class:`AuthzClient` is the port the endpoints use; :class:`HttpAuthzClient` speaks authz's
internal HTTP API over its unix socket or TCP, with the shared secret. Failures are told apart
for the endpoints: a refused code is the client's problem (400), anything else is ours (502).

A call, once started, runs to its end even when the endpoint that made it is cancelled (its
client left): httpx's pool keeps a connection that a cancellation catches between connecting
and sending as neither idle nor in use, for good (encode/httpcore#1093). A hundred of those, and
every sign-in and logout waited for the pool and failed. So each call runs in a task of its
own that the caller awaits through :func:`asyncio.shield`; a logout whose client left still
revokes, and :meth:`HttpAuthzClient.aclose` lets the calls in flight finish first.

Calls are capped per worker, in flight (``max_calls``, and httpx's pool holds as many
connections) and by rate (``max_rate`` a second, in bursts of as many), and one over either
cap is refused at once with :class:`AuthzBusy`, a 503. Anyone can make a call: a sign-in link
with a made-up code costs no cookie. Uncapped, a second of them from one client queued
thousands of calls in httpx's pool, whose every turn walks every waiting request, and the
worker answered nothing else, its health check included, for 12 to 86 s; with only the calls
in flight capped, a healthy authz answered them as fast as they came and the worker, at some
milliseconds of httpx a call, still fell 15 s behind. Legitimate calls (one per sign-in to an
app, one per sign-out) come far below the rate, which is also more than authz on SQLite
handles in all. A call whose caller left ends with its error retrieved, so that its failure is
not logged as a traceback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, Protocol

import httpx

from lychgate.errors import ClientError, LychgateError
from lychgate.gateway.feed_http import REDEEM_PATH, REVOKE_PATH, authz_client
from lychgate.gateway.http.request_ids import ID_FIELD
from lychgate.ids import SessionId, UserId
from lychgate.secret import Secret


class AuthzUnavailable(LychgateError):
    """authz could not be reached or failed (5xx): the gateway answers 502."""

    status = 502


class AuthzBusy(AuthzUnavailable):
    """This worker's calls to authz are at a cap (in flight, or a second): the gateway answers
    503 at once."""

    status = 503


#: Calls to authz in flight per worker (module docstring). Each takes authz some milliseconds.
MAX_CALLS: Final = 32
#: Calls to authz a second per worker, in bursts of as many (module docstring).
MAX_RATE: Final = 100.0


class CallBudget:
    """A token bucket: ``rate`` calls a second, at most ``rate`` at once."""

    __slots__ = ("_at", "_clock", "_rate", "_tokens")

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()

    def take(self) -> bool:
        """Spend one call if the budget has one; False (nothing spent) if not."""
        now = self._clock()
        tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class AuthzClient(Protocol):
    """The gateway's back channel to authz."""

    async def redeem_code(self, code: str, *, rid: str = "") -> str:
        """Redeem a one-time handoff code; return the app token. ``rid``: the id of the
        browser request this call serves, sent on as the call's own, for authz's log lines.

        Raises :class:`~lychgate.errors.ClientError` when authz refuses the code, and
        :class:`AuthzUnavailable` when authz cannot answer.
        """
        ...

    async def revoke_session(
        self, session_id: SessionId, user_id: UserId | None = None, *, rid: str = ""
    ) -> None:
        """Revoke a session: by its id, or with ``user_id`` by the handle that user's app
        token names it by; ``rid`` as for :meth:`redeem_code`. Raises
        :class:`AuthzUnavailable` on failure."""
        ...


class HttpAuthzClient:
    """:class:`AuthzClient` over authz's internal HTTP API (unix socket or TCP).

    ``POST /.lychgate/internal/handoff`` ``{"code": ...}`` -> ``{"token": ...}`` (4xx: refused);
    ``POST /.lychgate/internal/revoke`` ``{"session_id": ...[, "user_id": ...]}`` -> 2xx.
    """

    def __init__(
        self,
        base: str,
        secret: Secret,
        *,
        timeout: float = 5.0,
        max_calls: int = MAX_CALLS,
        max_rate: float = MAX_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limits = httpx.Limits(max_connections=max_calls, max_keepalive_connections=max_calls)
        self._client = authz_client(base, secret, timeout=timeout, limits=limits)
        self._timeout = timeout
        self._max_calls = max_calls
        self._budget = CallBudget(max_rate, clock)
        self._calls: set[asyncio.Task[httpx.Response]] = set()  # in flight (module docstring)

    async def redeem_code(self, code: str, *, rid: str = "") -> str:
        response = await self._post(REDEEM_PATH, {"code": code}, rid)
        if 400 <= response.status_code < 500:
            raise ClientError("authz refused the code", field="code")
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthzUnavailable("authz answered the redemption without a token")
        return token

    async def revoke_session(
        self, session_id: SessionId, user_id: UserId | None = None, *, rid: str = ""
    ) -> None:
        body: dict[str, str] = {"session_id": session_id}
        if user_id is not None:
            body["user_id"] = user_id
        response = await self._post(REVOKE_PATH, body, rid)
        if response.status_code >= 300:
            raise AuthzUnavailable(f"authz answered {response.status_code} to a revocation")

    @property
    def in_flight(self) -> int:
        """Calls started and not yet ended, whether or not anyone still awaits them."""
        return len(self._calls)

    def _ended(self, call: asyncio.Task[httpx.Response]) -> None:
        self._calls.discard(call)
        if not call.cancelled():
            call.exception()  # retrieved: a caller that left must not leave it to be logged

    async def aclose(self) -> None:
        if self._calls:  # each ends within its timeout
            await asyncio.wait(set(self._calls), timeout=self._timeout + 1.0)
        await self._client.aclose()

    async def _post(self, path: str, body: dict[str, str], rid: str) -> httpx.Response:
        if len(self._calls) >= self._max_calls:
            raise AuthzBusy(f"{self._max_calls} calls to authz in flight")
        if not self._budget.take():
            raise AuthzBusy("calls to authz over their rate")
        headers = {ID_FIELD: rid} if rid else None
        call = asyncio.ensure_future(self._client.post(path, json=body, headers=headers))
        self._calls.add(call)
        call.add_done_callback(self._ended)
        try:
            response = await asyncio.shield(call)  # a cancelled caller leaves the call running
        except httpx.HTTPError as exc:
            raise AuthzUnavailable(f"authz unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code in (401, 403):
            # 401/403: our secret is wrong; that is our failure, not the client's.
            raise AuthzUnavailable(f"authz answered {response.status_code}")
        return response
