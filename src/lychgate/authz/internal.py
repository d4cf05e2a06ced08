"""authz's internal API for gateways: the config feed, handoff redemption and revocation.

Every route needs ``Authorization: Bearer <internal token>`` (compared in constant time). The
gateway refuses to forward client requests under ``/.lychgate/internal/``, so in the default
topology only gateways reach these routes, over authz's unix socket.

Defense in depth (THREAT_MODEL.md T17): a route here matches only when the path the client sent
(ASGI ``raw_path``) is literally its path. uvicorn percent-decodes the path before routing, so
``/.lychgate/internal%2Ffeed`` or ``/.lychgate%2Finternal%2Fhandoff`` would otherwise be served
as the feed and the redemption; a gateway that decides on the raw form and forwards it could be
led past its own rule. Such a request is not even matched (:class:`LiteralPathRoute`): it gets
the same 404 as any unknown path, before the secret is checked, the body is read or a method
mismatch (405) or a slash redirect (307) could show that the route exists.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import Match
from starlette.types import Scope

from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import redeem_handoff
from lychgate.authz.sessions import find_by_handle, revoke_session
from lychgate.authz.snapshots import SnapshotPublisher
from lychgate.errors import NotFound, TokenError
from lychgate.gateway.feed_http import FEED_PATH, REDEEM_PATH, REVOKE_PATH
from lychgate.gateway.feed_wire import (
    MEDIA_TYPE,
    UPDATES_HEADER,
    asked_updates,
    feed_lines,
)
from lychgate.ids import SessionId, UserId

log = logging.getLogger(__name__)


def context(request: Request) -> AuthzContext:
    ctx: AuthzContext = request.app.state.ctx
    return ctx


def publisher(request: Request) -> SnapshotPublisher:
    pub: SnapshotPublisher = request.app.state.publisher
    return pub


_REFUSED: Final = "internal API: bad or missing secret"


def _authorized(ctx: AuthzContext, authorization: str | None) -> bool:
    expected = f"Bearer {ctx.secrets.internal_token.reveal()}".encode()
    return authorization is not None and hmac.compare_digest(authorization.encode(), expected)


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
    """An APIRoute that does not match a request whose raw path differs from its decoded path
    (see the module docstring): such a request falls through to the router's plain 404.

    It also checks the secret before anything else runs: FastAPI reads and parses a body
    before it solves a route's dependencies, so without this anyone who can reach authz
    (``authz_listen`` on TCP) could make it read a body of any size, and learn from a 422
    which routes exist."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") == "http" and not sent_literally(scope):
            return Match.NONE, {}
        return super().matches(scope)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def checked(request: Request) -> Response:
            ctx: AuthzContext = request.app.state.ctx
            if not _authorized(ctx, request.headers.get("authorization")):
                return JSONResponse({"detail": _REFUSED}, status_code=401)
            return await handle(request)

        return checked


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


@router.get(FEED_PATH)
async def feed(
    pub: Annotated[SnapshotPublisher, Depends(publisher)],
    updates: Annotated[str | None, Header(alias=UPDATES_HEADER)] = None,
) -> StreamingResponse:
    """NDJSON: the current snapshot, each change, and heartbeats (see gateway.feed_wire)."""
    lines = feed_lines(pub.subscribe(), updates=asked_updates(updates))
    return StreamingResponse(lines, media_type=MEDIA_TYPE)


@router.post(REDEEM_PATH)
async def handoff(body: HandoffIn, ctx: Annotated[AuthzContext, Depends(context)]) -> HandoffOut:
    try:
        return HandoffOut(token=await redeem_handoff(ctx, body.code))
    except (TokenError, NotFound) as exc:
        log.info("handoff refused: %s", getattr(exc, "reason", "not found"))
        raise HTTPException(status_code=400, detail="code refused") from None


@router.post(REVOKE_PATH, status_code=204)
async def revoke(body: RevokeIn, ctx: Annotated[AuthzContext, Depends(context)]) -> None:
    if body.user_id is None:
        await revoke_session(ctx, SessionId(body.session_id))  # unknown ids are no error
        return
    session = await find_by_handle(ctx, UserId(body.user_id), body.session_id)
    if session is not None:
        await revoke_session(ctx, session.id)
