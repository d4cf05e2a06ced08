"""close_when_sent (lychgate.gateway.http.tls_close) over fake transports, without sockets."""

from __future__ import annotations

import asyncio

from lychgate.gateway.http.tls_close import POLL, close_when_sent


class FakeTransport(asyncio.WriteTransport):
    """Holds ``held`` bytes to send; counts its closes."""

    def __init__(self, held: int = 0) -> None:
        super().__init__()
        self.held = held
        self.closes = 0

    def get_write_buffer_size(self) -> int:
        return self.held

    def is_closing(self) -> bool:
        return self.closes > 0

    def close(self) -> None:
        self.closes += 1


async def test_the_socket_closes_at_once_when_nothing_is_left_to_send() -> None:
    tls, tcp = FakeTransport(), FakeTransport()
    close_when_sent(tls, tcp)
    assert tcp.closes == 1
    assert tls.closes == 0  # the caller closed it already: its close_notify is what went


async def test_the_socket_waits_for_both_buffers_to_drain() -> None:
    tls, tcp = FakeTransport(held=10), FakeTransport(held=20)
    close_when_sent(tls, tcp)
    await asyncio.sleep(POLL * 2.5)
    assert tcp.closes == 0
    tls.held = 0  # the TLS layer has handed everything to TCP, which still holds some
    await asyncio.sleep(POLL * 2)
    assert tcp.closes == 0
    tcp.held = 0
    await asyncio.sleep(POLL * 2)
    assert tcp.closes == 1


async def test_a_socket_closed_meanwhile_is_left_alone() -> None:
    tls, tcp = FakeTransport(held=10), FakeTransport()
    close_when_sent(tls, tcp)
    tcp.close()  # the client closed it, or the TLS layer's own 30 s bound cut it
    tls.held = 0
    await asyncio.sleep(POLL * 2)
    assert tcp.closes == 1  # not closed again, and no longer looked at
