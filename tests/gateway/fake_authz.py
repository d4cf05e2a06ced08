"""A tiny fake of authz's internal API for loopback tests (no tests of its own).

Speaks just enough HTTP/1.1 over a unix socket or 127.0.0.1: every response is
``Connection: close`` and delimited by closing the connection (RFC 9112 section 6.3 item 8).

* ``GET /.lychgate/internal/feed``: 401 without the right bearer secret, else 200 and then the
  lines in :attr:`FakeAuthz.greeting` followed by whatever :meth:`FakeAuthz.push` sends, until
  :meth:`FakeAuthz.drop_feeds` closes the stream.
* ``POST /.lychgate/internal/handoff`` ``{"code"}``: ``{"token"}`` from :attr:`FakeAuthz.codes`
  (each code works once), 400 otherwise, or :attr:`FakeAuthz.status_override`.
* ``POST /.lychgate/internal/revoke`` ``{"session_id"}``: records it, 204.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FakeAuthz:
    secret: str = "feed-secret"
    greeting: list[bytes] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)
    status_override: int | None = None
    feed_status: int = 200
    redeemed: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    feed_requests: int = 0
    refused: int = 0
    auth_headers: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # each request's X-Request-Id, or ""
    feed_updates: list[str] = field(default_factory=list)  # each feed request's updates header
    _feeds: list[asyncio.Queue[bytes | None]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def start_unix(self, path: Path) -> str:
        self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        return f"unix:{path}"

    async def start_tcp(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.drop_feeds()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Feed handlers end on their own once dropped; cancelling them would make asyncio log
        # the cancellation from its stream callback, so only stragglers are cancelled.
        pending = set(self._handlers)
        if pending:
            _, stragglers = await asyncio.wait(pending, timeout=1.0)
            for task in stragglers:
                task.cancel()

    def push(self, line: bytes) -> None:
        """Send ``line`` on every open feed stream."""
        for queue in self._feeds:
            queue.put_nowait(line)

    def drop_feeds(self) -> None:
        """Close every open feed stream (authz went away, or restarted)."""
        for queue in self._feeds:
            queue.put_nowait(None)
        self._feeds.clear()
        self.connected.clear()

    @property
    def open_feeds(self) -> int:
        return len(self._feeds)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _ = request_line.split(" ")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        authorization = headers.get("authorization", "")
        self.auth_headers.append(authorization)
        self.request_ids.append(headers.get("x-request-id", ""))
        if authorization != f"Bearer {self.secret}":
            self.refused += 1
            await _reply(writer, 401, b"")
            return
        if method == "GET" and target == "/.lychgate/internal/feed":
            self.feed_updates.append(headers.get("lychgate-feed-updates", ""))
            await self._feed(writer)
        elif method == "POST" and target == "/.lychgate/internal/handoff":
            await self._handoff(writer, json.loads(body)["code"])
        elif method == "POST" and target == "/.lychgate/internal/revoke":
            if self.status_override is not None:
                await _reply(writer, self.status_override, b"")
                return
            self.revoked.append(json.loads(body)["session_id"])
            await _reply(writer, 204, b"")
        else:
            await _reply(writer, 404, b"")

    async def _feed(self, writer: asyncio.StreamWriter) -> None:
        self.feed_requests += 1
        if self.feed_status != 200:
            await _reply(writer, self.feed_status, b"")
            return
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._feeds.append(queue)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n"
        )
        for greeting in self.greeting:
            writer.write(greeting)
        await writer.drain()
        self.connected.set()
        while (line := await queue.get()) is not None:
            writer.write(line)
            await writer.drain()

    async def _handoff(self, writer: asyncio.StreamWriter, code: str) -> None:
        if self.status_override is not None:
            await _reply(writer, self.status_override, b"oops")
            return
        self.redeemed.append(code)
        token = self.codes.pop(code, None)
        if token is None:
            await _reply(writer, 400, b'{"error":"invalid_code"}')
            return
        await _reply(writer, 200, json.dumps({"token": token}).encode())


async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    writer.write(
        f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
