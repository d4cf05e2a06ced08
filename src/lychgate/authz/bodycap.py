"""A cap on request content for every authz route (SECURITY.md item 8).

FastAPI reads a JSON body whole before a route runs, and checks its media type only after:
a client could make authz hold a gigabyte (three times over, decoded) for one unauthenticated
login request. This middleware answers 413 for a ``Content-Length`` over the cap before
anything is read, and ends a body without one (chunked) as soon as it passes the cap. The
gateway applies the same cap to whatever it passes to authz
(:data:`~lychgate.gateway.http.limits.CONTROL_PLANE_MAX_BODY`), so this guards the direct
path: authz on TCP, reached by something other than a gateway.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = "too_large"


class BodyCap:
    """ASGI middleware: request content over ``limit`` bytes gets a 413 (see the module)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                # The shape of the 413 a chunked body gets below (FastAPI's HTTPException).
                refusal = JSONResponse(
                    {"detail": TOO_LARGE}, status_code=413, headers={"connection": "close"}
                )
                await refusal(scope, receive, send)
                return
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:  # the route's read fails; its exception handler answers
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, counted, send)
