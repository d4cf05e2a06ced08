"""authz's internal API for gateways: the config feed, handoff redemption and revocation.

Every route needs ``Authorization: Bearer <internal token>`` (compared in constant time). The
gateway refuses to forward client requests under ``/.lychgate/internal/``, so in the default
topology only gateways reach these routes, over authz's unix socket.

The secret is checked first, for the whole namespace: without it, every request whose path
as sent is ``/.lychgate/internal`` or under ``/.lychgate/internal/`` gets the same 401, whatever
its method and whether a route is there. A stranger who reaches authz on TCP so learns nothing
of the routes: no 405 for a wrong method, no 404 for a missing route, no 422 for a bad body.
With the secret, the routes answer as any other (a gateway may get a 405 or a 404).

Defense in depth (THREAT_MODEL.md T17): a route here matches only when the path the client sent
(ASGI ``raw_path``) is literally its path. uvicorn percent-decodes the path before routing, so
``/.lychgate/internal%2Ffeed`` or ``/.lychgate%2Finternal%2Fhandoff`` would otherwise be served
as the feed and the redemption; a gateway that decides on the raw form and forwards it could be
led past its own rule. Such a request is not even matched (:class:`LiteralPathRoute`): it is
answered as an unknown path is (a 404; without the secret, the namespace's 401 if the path as
sent is in it), before the body is read or a method mismatch (405) or a slash redirect (307)
could show that the route exists.

The feed (theory of operation in :mod:`lychgate.gateway.feed_serve`) refuses a new gateway
with a 503 while this replica does not vouch for its snapshot (:mod:`.snapshots`). A snapshot
not vouched for is not always a store out of reach: a process paused for a while (SIGSTOP, a
VM frozen, a debugger) wakes with its last look long past, and the gateways that reconnected
meanwhile are answered before its next look has run. So the feed first asks for a look and
waits for it a moment (:data:`VOUCH_WAIT`), and refuses only if the snapshot is still not
vouched for after that. The feed's response also closes a connection whose client stopped
reading (:class:`FeedResponse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import redeem_handoff
from lychgate.authz.sessions import find_by_handle, revoke_session
from lychgate.authz.snapshots import POLL_INTERVAL, SnapshotPublisher
from lychgate.errors import NotFound, TokenError
from lychgate.gateway.feed_http import FEED_PATH, REDEEM_PATH, REVOKE_PATH
from lychgate.gateway.feed_serve import feed_lines
from lychgate.gateway.feed_wire import MEDIA_TYPE, UPDATES_HEADER, asked_updates
from lychgate.gateway.routing import INTERNAL_PREFIX
from lychgate.ids import SessionId, UserId

log = logging.getLogger(__name__)


def context(request: Request) -> AuthzContext:
    ctx: AuthzContext = request.app.state.ctx
    return ctx


def publisher(request: Request) -> SnapshotPublisher:
    pub: SnapshotPublisher = request.app.state.publisher
    return pub


_REFUSED: Final = "internal API: bad or missing secret"
# How long a feed request waits for a look at the store before it is refused for want of a
# snapshot vouched for (module docstring): four polls at the default interval, room for a
# look begun before a pause to end and a new one to run; a fraction of the gateway's 15 s
# read timeout.
VOUCH_WAIT: Final = 4 * POLL_INTERVAL
_VOUCH_CHECK: Final = POLL_INTERVAL / 10  # how often the wait asks the publisher
# A feed connection whose client accepts nothing for this long is closed (FeedResponse): twice
# the gateway's read timeout (feed.READ_TIMEOUT), so never a gateway that is reading.
SEND_STALL: Final = 30.0
# ... plus the time the data in flight takes at this rate (bytes a second): a large snapshot
# on a slow link is not cut in the middle, and then again on every reconnection.
SEND_MIN_RATE: Final = 256 * 1024
UNVOUCHED: Final = (
    "authz has not confirmed its snapshot recently: its store reads are failing or slow"
)
_PREFIX: Final = INTERNAL_PREFIX.encode("ascii")


def _authorized(ctx: AuthzContext, authorization: str | None) -> bool:
    expected = f"Bearer {ctx.secrets.internal_token.reveal()}".encode()
    return authorization is not None and hmac.compare_digest(authorization.encode(), expected)


def _has_secret(scope: Scope) -> bool:
    ctx: AuthzContext = scope["app"].state.ctx
    return _authorized(ctx, Headers(scope=scope).get("authorization"))


def sent_under_prefix(scope: Scope) -> bool:
    """True if the request's raw path (as sent, query excluded) is in the internal namespace:
    ``/.lychgate/internal`` itself or anything under ``/.lychgate/internal/``."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return False
    path = raw.partition(b"?")[0]
    return path == _PREFIX or path.startswith(_PREFIX + b"/")


def sent_literally(scope: Scope) -> bool:
    """True if the request's raw path (as sent, query excluded) is exactly its decoded path.

    Internal paths are plain ASCII, so their encoded form is the path itself: any
    percent-escape, a missing ``raw_path`` (fail closed) or a path that is not ASCII is False.
    """
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return False
    path: str = scope.get("path", "")
    return path.isascii() and raw.partition(b"?")[0] == path.encode("ascii")


class LiteralPathRoute(APIRoute):
    """An APIRoute that checks the secret before anything else, and does not match a request
    whose raw path differs from its decoded path (see the module docstring): such a request
    falls through to the router's plain 404.

    Without the secret, a request in the internal namespace matches fully whatever its path and
    method, and :meth:`handle` answers it 401 before Starlette's method check (a 405 would show
    the route exists) and before FastAPI reads and parses a body (a 422 would too, and anyone
    who can reach authz on TCP could make it read a body of any size).
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") == "http":
            if sent_under_prefix(scope) and not _has_secret(scope):
                return Match.FULL, {}  # answered 401 by handle(), the same for every path
            if not sent_literally(scope):
                return Match.NONE, {}
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and not _has_secret(scope):
            await JSONResponse({"detail": _REFUSED}, status_code=401)(scope, receive, send)
            return
        await super().handle(scope, receive, send)


router = APIRouter(
    include_in_schema=False,
    route_class=LiteralPathRoute,
)


class HandoffIn(BaseModel):
    code: str = Field(min_length=1, max_length=256)


class HandoffOut(BaseModel):
    token: str


class RevokeIn(BaseModel):
    """A session to revoke: by its id (the value of a browser's sign-in cookie), or by the
    handle an app token names it by, with that token's user (``user_id``)."""

    session_id: str = Field(min_length=1, max_length=128)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)


class _Stalled(Exception):
    """A feed send did not complete within its allowance (seconds)."""

    def __init__(self, allowance: float) -> None:
        super().__init__(allowance)
        self.allowance = allowance


class FeedResponse(StreamingResponse):
    """The feed's stream, closed when its client stops accepting it.

    A send to a client that reads nothing blocks on flow control for as long as the client
    does. One that has not completed within ``stall`` seconds (:data:`SEND_STALL`), plus the
    time the bytes of this message and the one before (what the send may wait to see written)
    take at ``min_rate`` bytes a second (:data:`SEND_MIN_RATE`), ends the response
    unfinished: the server closes the connection, and the lines' generator is closed, which
    releases its snapshots. What the socket holds already is freed when the peer reads it or
    the kernel gives up on the connection. uvicorn logs a line of its own (at ERROR, without a
    traceback) about a response it was not given the end of.
    """

    def __init__(
        self,
        lines: AsyncGenerator[bytes, None],
        *,
        stall: float,
        min_rate: float,
    ) -> None:
        super().__init__(lines, media_type=MEDIA_TYPE)
        self._lines = lines
        self._stall = stall
        self._min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        before = 0  # bytes of the body message sent before this one

        async def bounded(message: Message) -> None:
            nonlocal before
            size = len(message.get("body", b""))
            allowance = self._stall + (before + size) / self._min_rate
            try:
                async with asyncio.timeout(allowance):
                    await send(message)
            except TimeoutError:
                raise _Stalled(allowance) from None
            before = size

        try:
            await super().__call__(scope, receive, bounded)
        except _Stalled as stalled:
            log.warning(
                "config feed: a gateway accepted nothing for %.3g s; closing its connection "
                "(it reconnects for a full snapshot when it reads again)",
                stalled.allowance,
            )
        finally:
            await self._lines.aclose()  # ends the pump and releases the snapshots now


async def vouched_soon(pub: SnapshotPublisher, wait: float = VOUCH_WAIT) -> bool:
    """True once ``pub`` vouches for its snapshot: at once, or after a look asked for now
    completes within ``wait`` seconds (module docstring)."""
    if pub.vouches():
        return True
    pub.poke()
    with contextlib.suppress(TimeoutError):  # not wait_for (authz.snapshots)
        async with asyncio.timeout(wait):
            # Asked, not told: the publisher signals a snapshot published, not a look that
            # found nothing new. Not refresh(): the gateways reconnecting at once would each
            # wait for a look of their own, one after the other.
            while not pub.vouches():  # noqa: ASYNC110
                await asyncio.sleep(_VOUCH_CHECK)
    return pub.vouches()


@router.get(FEED_PATH)
async def feed(
    pub: Annotated[SnapshotPublisher, Depends(publisher)],
    updates: Annotated[str | None, Header(alias=UPDATES_HEADER)] = None,
) -> Response:
    """NDJSON: the current snapshot, each change, and heartbeats (see gateway.feed_wire).

    A 503 while this replica does not vouch for its snapshot, after a moment's wait for a
    look (module docstring): its store cannot be read, or too slowly, so its last snapshot may
    miss revocations made through another replica, and a gateway taking it now would count it
    as fresh.
    """
    if pub.latest is not None and not await vouched_soon(pub):
        return JSONResponse({"detail": UNVOUCHED}, status_code=503, headers={"retry-after": "5"})
    lines = feed_lines(pub.subscribe(), updates=asked_updates(updates), vouched=pub.vouches)
    return FeedResponse(lines, stall=SEND_STALL, min_rate=SEND_MIN_RATE)


@router.post(REDEEM_PATH)
async def handoff(
    body: HandoffIn, request: Request, ctx: Annotated[AuthzContext, Depends(context)]
) -> HandoffOut:
    try:
        return HandoffOut(token=await redeem_handoff(ctx, body.code))
    except (TokenError, NotFound) as exc:
        # Why, in words: the reason code alone said "replayed" for an unknown code and for
        # a session ended since, alike. The message holds neither the code nor a token.
        # Anyone can make a gateway ask (a made-up code in a sign-in link): one line per
        # reason every 10 s, with a count of the rest (the gateway's access log has each).
        why = str(exc)
        more = request.app.state.refused_handoffs.due(why)
        if more is not None:
            log.info("handoff refused: %s%s", why, more)
        raise HTTPException(status_code=400, detail="code refused") from None


@router.post(REVOKE_PATH, status_code=204)
async def revoke(body: RevokeIn, ctx: Annotated[AuthzContext, Depends(context)]) -> None:
    if body.user_id is None:
        await revoke_session(ctx, SessionId(body.session_id))  # unknown ids are no error
        return
    session = await find_by_handle(ctx, UserId(body.user_id), body.session_id)
    if session is not None:
        await revoke_session(ctx, session.id)
