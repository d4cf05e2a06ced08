"""A fake transport, for driving protocols without sockets (fuzzing, exact byte checks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lychgate.gateway.http.connection import ClientConnection

if TYPE_CHECKING:
    from lychgate.gateway.http.context import ServerContext


class FakeTransport(asyncio.Transport):
    """Records what is written; reports a fixed peer."""

    def __init__(self, protocol: asyncio.BaseProtocol | None = None) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.writes = 0
        self.pieces = 0  # what a transport would buffer one record each for
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.9", 5555)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed
        self.written += data
        self.writes += 1
        self.pieces += 1

    def writelines(self, list_of_data: Any) -> None:
        assert not self.closed
        for data in list_of_data:
            self.written += data
            self.pieces += 1
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True
        self.aborted = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol


async def feed_client(
    ctx: ServerContext,
    chunks: list[bytes],
    settle: Callable[[], Awaitable[None]],
    *,
    settle_each: bool = False,
) -> FakeTransport:
    """One client connection on ``ctx`` over a fake transport: read ``chunks`` in turn (until
    the engine closes it), ``settle`` (after each chunk too with ``settle_each``), then lose
    the connection. Returns the transport, holding what the engine wrote."""
    client = ClientConnection(ctx)
    transport = FakeTransport(client)
    client.connection_made(transport)
    for chunk in chunks:
        if transport.closed:
            break
        client.data_received(chunk)
        if settle_each:
            await settle()
    await settle()
    client.connection_lost(None)
    return transport
