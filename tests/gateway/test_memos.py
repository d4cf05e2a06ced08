"""The engine's memos of field names never keep a long name (lychgate.gateway.http.headers).

They are keyed on what clients and upstreams send, and never forget: bounded by count alone,
a thousand 16 KB names would have stayed in each for the worker's life (tens of MB).
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.client import get
from gateway.conftest import Connect, RawRoute, Start, forward_to
from gateway.test_forwarding import fwd, head
from gateway.upstreams import Reply, Seen, http_upstream, read_head
from lychgate.gateway import forwarding
from lychgate.gateway.http import connection, upstream_framing
from lychgate.gateway.http.headers import MEMO_NAME_MAX

LONG = "x-" + "l" * 8000
SHORT = "x-short-name"


def test_forwarding_memoizes_only_short_names() -> None:
    sent = fwd(head((LONG, "1"), (SHORT, "2")))
    assert (LONG, "1") in sent  # forwarded all the same
    assert (SHORT, "2") in sent
    assert LONG not in forwarding._KINDS
    assert SHORT in forwarding._KINDS
    assert len(SHORT) <= MEMO_NAME_MAX < len(LONG)


@pytest.mark.loopback
async def test_the_engine_memoizes_only_short_names_both_ways(
    gateway: Start, connect: Connect, raw_route: RawRoute
) -> None:
    async def answer(seen: Seen, reply: Reply) -> None:
        await reply.send(200, (seen.header(LONG) or "").encode())

    async with http_upstream(answer) as up:
        gw = await gateway(forward_to(up.url))
        c = await connect(gw.port)
        await c.send(get(extra=f"{LONG}: from-client\r\n"))
        assert (await c.read_response()).body == b"from-client"
    assert LONG.encode() not in connection._NAMES

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(f"HTTP/1.1 200 OK\r\n{LONG}: up\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_route(serve) as (c2, _):
        await c2.send(get())
        assert (await c2.read_response()).header(LONG) == "up"
    assert LONG.encode() not in upstream_framing._NAMES
