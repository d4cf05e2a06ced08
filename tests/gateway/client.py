"""A raw HTTP/1.1 client for tests that need exact bytes: pipelining, bad framing, timing.

Responses are parsed here by hand (not with the engine's parser), so that the tests read the
wire as an independent client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass
from http import HTTPStatus

import trustme

from gateway.waiting import PATIENCE


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def page(self) -> bytes:
        """What the gateway's own error page for this status must hold (:func:`page_body`)."""
        return page_body(self.status, self.header("x-request-id"))


def page_body(status: int, rid: str | None) -> bytes:
    """The content of the gateway's own error page for ``status``: the status, and the request
    id its ``X-Request-Id`` names (one of ours: 24 hex digits), and nothing else."""
    assert rid is not None
    assert re.fullmatch("[0-9a-f]{24}", rid), rid
    phrase = HTTPStatus(status).phrase.encode()
    return b"%d %s\nrequest id: %s\n" % (status, phrase, rid.encode())


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> RawClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context, server_hostname=server_hostname, limit=1 << 20
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def dribble(self, data: bytes, every: float) -> None:
        """Send ``data`` a byte at a time, one each ``every`` seconds (a slowloris client);
        stop quietly once the server has cut the connection."""
        with contextlib.suppress(ConnectionError):
            for i in range(len(data)):
                await self.send(data[i : i + 1])
                await asyncio.sleep(every)

    async def read_response(
        self, *, head_request: bool = False, timeout: float = PATIENCE
    ) -> Response:
        async with asyncio.timeout(timeout):
            return await self._read_response(head_request)

    async def _read_response(self, head_request: bool) -> Response:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip().lower(), value.strip()))
        resp = Response(status, headers, b"", raw)
        if head_request or status < 200 or status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None:
            assert te.lower().endswith("chunked")
            body = bytearray()
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers from the engine
                    break
                body += await self.reader.readexactly(size)
                assert await self.reader.readexactly(2) == b"\r\n"
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = await self.reader.readexactly(int(cl))
        else:
            resp.body = await self.reader.read()
        return resp

    async def read_until_closed(self, timeout: float = PATIENCE) -> bytes:
        async with asyncio.timeout(timeout):
            out = bytearray()
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return bytes(out)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def get(target: str = "/", host: str = "test.localhost", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


async def peer_names(port: int, ca: trustme.CA, server_name: str = "any.example") -> list[str]:
    """The DNS names of the certificate a TLS listener presents for ``server_name``."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.check_hostname = False  # the chain is checked; the caller looks at the names
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=server_name
    )
    cert = writer.get_extra_info("peercert")
    writer.close()
    await writer.wait_closed()
    return [v for k, v in cert["subjectAltName"] if k == "DNS"]
