"""1k concurrent WebSocket connections doing echo round trips through the proxy.

Every connection sends a binary message and waits for its echo, again and again, until the
deadline; the latency of each round trip is recorded. The client is callback-driven (see
bench/wsframes.py) so that, on two cores, the proxy rather than the load generator sets the rate.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import cast

from bench.fmt import format_kib, format_ms, format_number
from bench.procs import LOOPBACK, RssSampler
from bench.scenarios.base import Column, Measurement, RunSettings, Scenario, Upstream, percentile
from bench.targets import Target
from bench.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameError,
    FrameReader,
    HandshakeError,
    check_upgrade_response,
    encode_frame,
    new_key,
    upgrade_request,
)

OPEN_CONCURRENCY = 100
OPEN_TIMEOUT_S = 15.0
MAX_HEAD = 16 * 1024


class EchoClient(asyncio.Protocol):
    """One connection: handshake, then send / await echo / send until the deadline."""

    def __init__(self, request: bytes, key: str, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.latencies_ns: list[int] = []
        self._request = request
        self._key = key
        self._payload = payload
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._frames: FrameReader | None = None
        self._deadline = 0.0
        self._sent_at = 0
        self._running = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        try:
            if self._frames is None:
                data = self._handshake(data)
                if not data:
                    return
            assert self._frames is not None
            for m in self._frames.feed(data):
                self._on_message(m.opcode, m.payload)
        except (FrameError, HandshakeError) as exc:
            self._fail(exc)

    def _handshake(self, data: bytes) -> bytes:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                raise HandshakeError("response head too long")
            return b""
        check_upgrade_response(bytes(self._head[:end]), self._key)
        self._frames = FrameReader(expect_masked=False)
        self.opened.set_result(None)
        return bytes(self._head[end + 4 :])

    def _on_message(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_BINARY:
            self.latencies_ns.append(time.perf_counter_ns() - self._sent_at)
            if payload != self._payload:
                raise FrameError("echo differs from the message sent")
            if time.perf_counter() < self._deadline:
                self._send()
            elif not self.done.done():
                self.done.set_result(None)
        elif opcode == OP_PING and self._transport is not None:
            self._transport.write(encode_frame(OP_PONG, payload, masked=True))
        elif opcode == OP_CLOSE:
            raise FrameError("closed by the server")

    def _send(self) -> None:
        assert self._transport is not None
        self._sent_at = time.perf_counter_ns()
        self._transport.write(encode_frame(OP_BINARY, self._payload, masked=True))

    def start(self, deadline: float) -> None:
        """Begin the round trips; ``done`` resolves at the first echo after ``deadline``."""
        self._deadline = deadline
        self._running = True
        self._send()

    def close(self) -> None:
        """Send a close frame (status 1000) and close the connection."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(encode_frame(OP_CLOSE, (1000).to_bytes(2, "big"), masked=True))
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        # Only a future someone awaits gets the error: ``opened`` while opening, ``done`` once
        # round trips have started.
        if not self.opened.done():
            self.opened.set_exception(exc)
        elif self._running and not self.done.done():
            self.done.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost ({exc!r})"))


async def _open(target: Target, payload: bytes, gate: asyncio.Semaphore) -> EchoClient:
    key = new_key()
    host = f"{LOOPBACK}:{target.port}"
    request = upgrade_request(host, "/ws", key, target.headers)
    async with gate:
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(
            lambda: EchoClient(request, key, payload), LOOPBACK, target.port
        )
        _, client = await asyncio.wait_for(connecting, OPEN_TIMEOUT_S)
        try:
            await asyncio.wait_for(client.opened, OPEN_TIMEOUT_S)
        except BaseException:
            client.close()
            raise
        return client


async def run_websocket(target: Target, settings: RunSettings) -> Measurement:
    """Open ``ws_connections`` connections, then round-trip on all of them for the duration."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    payload = secrets.token_bytes(settings.ws_payload_bytes)
    notes = []
    clients: list[EchoClient] = []
    with RssSampler(target.rss_roots, interval=0.1) as rss:
        try:
            opened = await asyncio.gather(
                *(_open(target, payload, gate) for _ in range(settings.ws_connections)),
                return_exceptions=True,
            )
            clients = [c for c in opened if isinstance(c, EchoClient)]
            errors = [e for e in opened if isinstance(e, BaseException)]
            if not clients:
                raise RuntimeError(f"no WebSocket opened: {errors[0]!r}")
            if errors:
                notes.append(f"{len(errors)} failed to open ({errors[0]!r})")
            started = time.perf_counter()
            for c in clients:
                c.start(started + settings.duration_s)
            async with asyncio.timeout(settings.duration_s + 30):
                outcomes = await asyncio.gather(*(c.done for c in clients), return_exceptions=True)
            elapsed = time.perf_counter() - started
        finally:
            for c in clients:
                c.close()
    latencies = sorted(ns for c in clients for ns in c.latencies_ns)
    if broken := [e for e in outcomes if isinstance(e, BaseException)]:
        notes.append(f"{len(broken)} connections broke ({broken[0]!r})")
    if not latencies:
        raise RuntimeError("no round trip completed")
    return Measurement(
        rate=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
        rss_growth_kib=rss.growth_kib,
        notes=(f"{len(clients)} connections", *notes),
    )


def _rate(m: Measurement) -> float | None:
    return m.rate


WEBSOCKET = Scenario(
    key="websocket",
    title=(
        "{ws_connections:,} concurrent WebSockets, echo round trips of "
        "{ws_payload_bytes}-byte messages for {duration_s:g} s"
    ),
    upstream=Upstream.WS,
    run=run_websocket,
    columns=(
        Column("round trips/s", lambda m: format_number(m.rate)),
        Column("p50", lambda m: format_ms(m.p50_ms)),
        Column("p99", lambda m: format_ms(m.p99_ms)),
        Column("RSS growth", lambda m: format_kib(m.rss_growth_kib)),
    ),
    ratio_of=_rate,
    ratio_label="round trips/s",
)
