"""A client that pipelines requests and never reads the answers (SECURITY.md 8, slow-read).

The gateway answers some requests itself (a 401 to anyone without a cookie), so such a client
needs no account: it used to get every answer written into a buffer that only grew (5 MB a
second on one connection), with reading never paused and no send timeout ever reached.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.conftest import Start
from lychgate.gateway.http import Limits
from lychgate.gateway.types import Respond

pytestmark = pytest.mark.loopback

REQUEST = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


async def test_a_client_that_pipelines_and_never_reads_is_paused_then_cut(gateway: Start) -> None:
    gw = await gateway(
        lambda head: Respond(401, (), b"sign in first\n" * 64),
        limits=Limits(send_timeout=0.5, idle_timeout=60.0),
    )
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", gw.port))
    started = loop.time()
    sent = 0
    try:
        async with asyncio.timeout(10):
            while True:
                await loop.sock_sendall(sock, REQUEST * 2000)
                sent += 1
                await asyncio.sleep(0.01)
    except (ConnectionError, OSError):
        pass  # cut: what we wanted
    finally:
        sock.close()
    # Reading stopped once its queue was full and the answers were not read, and the send
    # timeout then cut it, long before the idle timeout.
    assert loop.time() - started < 5.0
    assert sent < 200  # about 5 MB of requests at most before the gateway stopped reading
