"""How :mod:`lychgate.gateway.http.tls_accept` steps ``start_tls`` by hand, without sockets.

A task steps a coroutine only when the future it waits on now completes. The accept path steps
``start_tls`` from done-callbacks, and also at once when data arrives after the handshake's wait
succeeded (the standard loop's TLS layer reads on straight away): so the callback of a wait
long past must not step it again.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from lychgate.gateway.http.context import ServerContext
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.pool import UpstreamPool, unverified_client_context
from lychgate.gateway.http.tls_accept import TlsAcceptor
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.types import Decision, RequestHead


class _Loop:
    """Just enough of a loop for the accept path: a ``start_tls`` that waits twice."""

    def __init__(self, first: asyncio.Future[None], second: asyncio.Future[None]) -> None:
        self.waits = (first, second)

    def time(self) -> float:
        return 0.0  # the clock stands still: nothing times out

    def call_at(self, when: float, callback: Any) -> asyncio.Handle:
        return asyncio.get_running_loop().call_at(10**9, callback)  # never, in a test

    def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        first, second = self.waits

        async def handshake() -> None:
            await first
            await second

        return handshake()


class _Layer(asyncio.BufferedProtocol):
    """The TLS layer ``start_tls`` puts in place: keeps what it is given."""

    def __init__(self) -> None:
        self.buffer = bytearray(4)  # smaller than the hello: given in pieces
        self.got = b""

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.got += self.buffer[:nbytes]


class _Socket(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborts = 0
        self.layer = _Layer()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("203.0.113.7", 40000) if name == "peername" else default

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.layer

    def abort(self) -> None:
        self.aborts += 1


def _refuse(head: RequestHead) -> Decision:
    raise AssertionError("no request gets this far")


def test_the_callback_of_a_wait_long_past_does_not_step_the_handshake() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        ctx = ServerContext(
            loop=_Loop(first, second),  # type: ignore[arg-type]
            handler=_refuse,
            limits=Limits(),
            pool=UpstreamPool(ssl_context=unverified_client_context()),
            tunnels=TunnelRegistry(),
            scheme="https",
        )
        acceptor = TlsAcceptor(ctx, ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), 1.0)
        accepting = acceptor.protocol()
        tcp = _Socket()
        accepting.connection_made(tcp)
        hello = b"\x16\x03\x01\x00\x05hello"
        accepting.data_received(hello)  # steps to the first wait
        assert tcp.layer.got == hello  # handed to the TLS layer, as the transport would
        first.set_result(None)  # its callback is now scheduled...
        accepting.data_received(b"early")  # ...but data steps on first, to the second wait
        for _ in range(3):
            await asyncio.sleep(0)  # the first wait's callback runs, late
        assert acceptor.pending == {accepting}  # still waiting on the second, not failed
        assert tcp.aborts == 0
        acceptor.close()
        assert tcp.aborts == 1
        second.cancel()
        await asyncio.sleep(0)

    asyncio.run(scenario())
