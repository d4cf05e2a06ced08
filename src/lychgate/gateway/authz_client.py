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
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httpx

from lychgate.errors import ClientError, LychgateError
from lychgate.gateway.feed_http import REDEEM_PATH, REVOKE_PATH, authz_client
from lychgate.gateway.http.request_ids import ID_FIELD
from lychgate.ids import SessionId, UserId
from lychgate.secret import Secret


class AuthzUnavailable(LychgateError):
    """authz could not be reached or failed (5xx): the gateway answers 502."""

    status = 502


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

    def __init__(self, base: str, secret: Secret, *, timeout: float = 5.0) -> None:
        self._client = authz_client(base, secret, timeout=timeout)
        self._timeout = timeout
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

    async def aclose(self) -> None:
        if self._calls:  # each ends within its timeout
            await asyncio.wait(set(self._calls), timeout=self._timeout + 1.0)
        await self._client.aclose()

    async def _post(self, path: str, body: dict[str, str], rid: str) -> httpx.Response:
        headers = {ID_FIELD: rid} if rid else None
        call = asyncio.ensure_future(self._client.post(path, json=body, headers=headers))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        try:
            response = await asyncio.shield(call)  # a cancelled caller leaves the call running
        except httpx.HTTPError as exc:
            raise AuthzUnavailable(f"authz unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code in (401, 403):
            # 401/403: our secret is wrong; that is our failure, not the client's.
            raise AuthzUnavailable(f"authz answered {response.status_code}")
        return response
