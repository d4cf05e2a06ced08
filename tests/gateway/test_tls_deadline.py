"""The first request head on a TLS listener is due ``header_timeout`` after the accept.

The handshake's own bound used to be followed by a fresh ``header_timeout`` for the head, so a
slowloris client held its connection, and its slot among the client's connections, for about
twice the timeout (:mod:`lychgate.gateway.http.tls_accept`, step 4). The client here drives
TLS by hand over a memory BIO, so that it can send its ClientHello and its head as slowly as
it likes. Real sockets on loopback, trustme certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from gateway.client import get
from gateway.conftest import Start
from gateway.test_tls import _pair, _trusting
from lychgate.gateway.http import GatewayServer, Limits
from lychgate.gateway.http.tls import server_context
from lychgate.gateway.types import Decision, RequestHead, Respond

pytestmark = pytest.mark.loopback

NAME = "app.example"
TIMEOUT = 1.0  # header_timeout: long enough that the loop's slack is small beside it
EARLY = 0.02  # the loop's clock has millisecond resolution (CI once saw 0.29999 for 0.3)


@pytest.fixture
def listener_ctx(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    return server_context(_pair(ca, tmp_path, NAME))


def _answer(head: RequestHead) -> Decision:
    return Respond(200, (), head.target.encode())


class SlowTls:
    """A TLS client over a memory BIO: every byte goes out when and as the test says (or,
    ``server_side``, the server's end of such a connection)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ctx: ssl.SSLContext,
        *,
        server_side: bool = False,
    ) -> None:
        self.reader, self.writer = reader, writer
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        name = None if server_side else NAME
        self._tls = ctx.wrap_bio(self._in, self._out, server_side, server_hostname=name)
        self.plain = b""  # decrypted, as read so far

    async def handshake(self, hello_over: float) -> None:
        """Handshake, sending the ClientHello in ten pieces spread over ``hello_over``."""
        first = True
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                break
            await self._flush(hello_over / 10 if first else 0.0)
            first = False
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            self._in.write(data)
        await self._flush(0.0)  # the client's Finished

    async def send(self, data: bytes, *, every: float = 0.0) -> None:
        """Send ``data`` encrypted, a record a byte ``every`` seconds apart (0: at once)."""
        pieces = [data[i : i + 1] for i in range(len(data))] if every else [data]
        for piece in pieces:
            self._tls.write(piece)
            await self._flush(0.0)
            if every:
                await asyncio.sleep(every)

    async def read_until_closed(self) -> bytes:
        """Everything decrypted until the server closes: its close_notify (this client never
        sends its own), or the TCP close, or a reset."""
        while data := await self._receive():
            self._in.write(data)
            if self._decrypt():
                return self.plain
        return self.plain

    async def until_tcp_closed(self) -> None:
        """Read on, dropping what comes, until the TCP connection ends (FIN or reset)."""
        while await self._receive():
            pass

    async def _receive(self) -> bytes:
        """The next bytes from the socket; b"" once it is closed or reset."""
        try:
            return await self.reader.read(65536)
        except ConnectionError:
            return b""

    async def read_until(self, end: bytes) -> bytes:
        while end not in self.plain:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed before the answer ended")
            self._in.write(data)
            self._decrypt()
        got, _, self.plain = self.plain.partition(end)
        return got + end

    def _decrypt(self) -> bool:
        """Decrypt what came; True once the server's close_notify has."""
        while True:
            try:
                chunk = self._tls.read(65536)
            except ssl.SSLWantReadError:
                return False
            except ssl.SSLZeroReturnError:
                return True
            if not chunk:
                return True
            self.plain += chunk

    async def _flush(self, every: float) -> None:
        data = self._out.read()
        if not every:
            self.writer.write(data)
            await self.writer.drain()
            return
        step = max(1, -(-len(data) // 10))
        for i in range(0, len(data), step):
            self.writer.write(data[i : i + step])
            await self.writer.drain()
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def _slow_tls(port: int, ca: trustme.CA) -> AsyncIterator[SlowTls]:
    """A :class:`SlowTls` connected to ``port``, closed after."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield SlowTls(reader, writer, _trusting(ca))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _listener(gateway: Start, ctx: ssl.SSLContext) -> GatewayServer:
    return await gateway(_answer, ssl=ctx, limits=Limits(header_timeout=TIMEOUT, idle_timeout=30))


async def _dribble(client: SlowTls, head: bytes) -> None:
    """A byte of ``head`` every 50 ms, never the last; stops when the server has cut it."""
    with contextlib.suppress(ConnectionError):
        await client.send(head[:-1], every=0.05)


async def test_a_slow_handshake_then_a_slow_head_is_cut_one_timeout_after_the_accept(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    gw = await _listener(gateway, listener_ctx)
    loop = asyncio.get_running_loop()
    started = loop.time()  # before connecting: the gateway accepts after this
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.6 * TIMEOUT)
        shaken = loop.time() - started  # the gateway was done with it a little later
        head = get("/slow", extra="x-a: " + "b" * 200 + "\r\n")  # 12 s at 50 ms a byte
        async with asyncio.TaskGroup() as tg:
            sender = tg.create_task(_dribble(client, head))
            async with asyncio.timeout(10):
                answer = await client.read_until(b"\r\n\r\n")
            cut = loop.time() - started
            sender.cancel()
    assert shaken >= 0.55 * TIMEOUT  # the handshake did take most of the time
    assert answer.startswith(b"HTTP/1.1 408 ")  # answered as before: a 408, then the close
    assert b"connection: close\r\n" in answer.lower()
    # One header_timeout after the accept, before a fresh one after the handshake could end
    # (where the 408 used to come). The upper bound leaves the loop 0.6 s to be late.
    assert TIMEOUT - EARLY <= cut < shaken + TIMEOUT


async def test_silence_after_a_slow_handshake_is_closed_one_timeout_after_the_accept(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    gw = await _listener(gateway, listener_ctx)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.6 * TIMEOUT)
        shaken = loop.time() - started
        async with asyncio.timeout(10):
            answer = await client.read_until_closed()  # the gateway's close_notify
        cut = loop.time() - started
    assert answer == b""  # no byte of a request: closed without a word, as before
    assert TIMEOUT - EARLY <= cut < shaken + TIMEOUT


async def test_a_head_within_the_rest_of_the_timeout_is_served(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    gw = await _listener(gateway, listener_ctx)
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.5 * TIMEOUT)
        await client.send(get("/first"), every=0.005)  # about 0.2 s, within what is left
        answer = await client.read_until(b"/first")
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_keep_alive_head_gets_its_own_full_timeout(
    gateway: Start, listener_ctx: ssl.SSLContext, ca: trustme.CA
) -> None:
    # Only the first head shares its time with the handshake: the next starts its own
    # header_timeout at its first byte, long after the first head's deadline has passed.
    gw = await _listener(gateway, listener_ctx)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _slow_tls(gw.port, ca) as client:
        await client.handshake(hello_over=0.5 * TIMEOUT)
        await client.send(get("/first"))
        assert (await client.read_until(b"/first")).startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.4 * TIMEOUT)  # idle, within idle_timeout
        head = get("/second")
        every = 0.6 * TIMEOUT / len(head)  # most of a timeout, from its first byte
        await client.send(head, every=every)
        assert loop.time() - started > 1.5 * TIMEOUT  # well past the first head's deadline
        assert (await client.read_until(b"/second")).startswith(b"HTTP/1.1 200 ")
    assert gw.stats.connections_total == 1
