"""``X-Content-Type-Options: nosniff`` on every authz response.

authz's HTML pages set it with their other headers, but FastAPI's own answers (a 404, a 405,
a 422) and the JSON routes did not: a browser that sniffs could take such a body, which may
echo what the client sent (a 422 names the keys it found), for something other than JSON.
The gateway's own answers carry it already.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_NAME = b"x-content-type-options"
_HEADER = (_NAME, b"nosniff")


class NoSniff:
    """ASGI middleware: adds the header to every HTTP response that lacks it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == _NAME for name, _ in headers):
                    headers.append(_HEADER)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)
