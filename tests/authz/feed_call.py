"""One request for the config feed, made straight to an ASGI app (no tests of its own).

httpx's ASGI transport waits for the end of a response, and the feed does not end. A
:class:`FeedCall` drives the app itself, as uvicorn does, and plays a gateway whose socket can
fill: a send completes only while :attr:`FeedCall.reading` is set, and it is cleared after
``accepts`` body messages, as a gateway that stops reading (paused, or its loop blocked). With
``delay``, each send of the body takes that long at least: a gateway that reads slowly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message

from lychgate.gateway.feed_http import FEED_PATH
from lychgate.gateway.feed_wire import UPDATES


class FeedCall:
    """``GET`` the feed from ``app`` with the internal ``secret`` and the ``updates`` header."""

    def __init__(
        self,
        app: ASGIApp,
        secret: str,
        *,
        updates: str | None = ", ".join(sorted(UPDATES)),
        accepts: int | None = None,
        delay: float = 0.0,
        spec_version: str = "2.3",  # uvicorn's
    ) -> None:
        self.app = app
        self.accepts = accepts
        self.delay = delay
        self.status: int | None = None
        self.body = bytearray()
        self.sends = 0  # body messages accepted
        self.ended = False  # the app sent the end of the body
        self.reading = asyncio.Event()
        self.reading.set()
        self._gone = asyncio.Event()
        headers = [(b"host", b"authz.internal"), (b"authorization", f"Bearer {secret}".encode())]
        if updates is not None:
            headers.append((b"lychgate-feed-updates", updates.encode()))
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": FEED_PATH,
            "raw_path": FEED_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8081),
        }

    async def run(self) -> None:
        """Until the app returns (the gateway left, the app cut it, or the body ended)."""
        await self.app(self.scope, self._receive, self._send)

    def leave(self) -> None:
        """The gateway closes the connection."""
        self._gone.set()

    def lines(self) -> list[bytes]:
        """The complete lines received so far, each with its ``\\n``."""
        return [line + b"\n" for line in bytes(self.body).split(b"\n")[:-1]]

    async def _receive(self) -> Message:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.reading.wait()
        self.body += message.get("body", b"")
        self.sends += 1
        self.ended = not message.get("more_body", False)
        if self.accepts is not None and self.sends >= self.accepts:
            self.reading.clear()
