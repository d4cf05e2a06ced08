"""Request ids (``lychgate.gateway.http.request_ids``): made, kept from a trusted proxy only,
sent upstream once, and the same in the answer, the error page and the access record."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from gateway.client import get
from gateway.conftest import Answers, Connect, Start, forward_to, upgrade_to
from gateway.upstreams import SWITCHED, WS_FIELDS, http_upstream, raw_upstream, read_head
from gateway.waiting import eventually
from lychgate.config import load_settings
from lychgate.gateway.admit_responses import deny
from lychgate.gateway.http.request_ids import RequestIds, kept_id, trusts_nobody
from lychgate.gateway.http.tunnel import TunnelEnded
from lychgate.gateway.runner import trusted_ids
from lychgate.gateway.types import Decision, RequestHead, Respond

OURS = re.compile("[0-9a-f]{24}")


def from_proxy(ip: str) -> bool:
    return ip == "10.0.0.9"


# -- made and kept, without sockets ---------------------------------------------------------


def test_ids_are_24_hex_digits_and_never_repeat_across_refills() -> None:
    ids = RequestIds()
    made = [ids.new() for _ in range(5000)]  # some fifteen reads of random bytes
    assert all(OURS.fullmatch(rid) for rid in made)
    assert len(set(made)) == len(made)


def test_two_makers_draw_different_ids() -> None:
    # Each worker makes its own after the fork: nothing is shared between two.
    first, second = RequestIds(), RequestIds()
    assert {first.new() for _ in range(400)}.isdisjoint(second.new() for _ in range(400))


def test_a_clients_own_id_is_not_believed() -> None:
    ids = RequestIds(from_proxy)
    for given in ("abc-123", "0123456789abcdef01234567"):
        rid = ids.of("10.0.0.1", (("x-request-id", given),))
        assert rid != given
        assert OURS.fullmatch(rid)
    assert RequestIds().of("10.0.0.9", (("x-request-id", "abc"),)) != "abc"


@pytest.mark.parametrize(
    "given",
    [
        "abc-123",
        "5f0c3e1a-9b2d-4c8e-8f00-3b1d2e4a5c6f",  # a UUID
        "6e2fe0c2f3f5b2c1a7d94f1e8b0c3d2a",  # nginx's $request_id
        "Zm9v/YmFy+cQ==",
        "req:1.2@edge_~",
        "a" * 128,
    ],
)
def test_a_trusted_proxys_id_is_kept(given: str) -> None:
    assert kept_id(given)
    assert RequestIds(from_proxy).of("10.0.0.9", (("x-request-id", given),)) == given


@pytest.mark.parametrize(
    "given",
    ["", "a" * 129, "two words", 'quo"te', "semi;colon", "back\\slash", "tab\there", "é", "<b>"],
)
def test_a_trusted_proxys_unlikely_id_is_replaced_not_refused(given: str) -> None:
    assert not kept_id(given)
    rid = RequestIds(from_proxy).of("10.0.0.9", (("x-request-id", given),))
    assert OURS.fullmatch(rid)


def test_two_ids_from_a_trusted_proxy_are_replaced() -> None:
    fields = (("x-request-id", "first"), ("x-request-id", "second"))
    rid = RequestIds(from_proxy).of("10.0.0.9", (*fields,))
    assert OURS.fullmatch(rid)


# -- on the wire ------------------------------------------------------------------------------


def ids_of(fields: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in fields if name == "x-request-id"]


async def test_each_forwarded_request_carries_one_id_and_the_record_has_it(
    gateway: Start, connect: Connect
) -> None:
    answers = Answers()
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url), on_response=answers)
        c = await connect(gw.port)
        # The client's own (in any letter case, or named by Connection) never gets through.
        spoofed = "X-Request-Id: spoofed\r\nx-request-ID: again\r\nConnection: x-request-id\r\n"
        await c.send(get("/a", extra=spoofed) + get("/b") + get("/c"))  # pipelined
        for _ in range(3):
            assert (await c.read_response()).status == 200
        await eventually(lambda: len(answers.rids) == 3, what="three records")
    sent = [ids_of(seen.headers) for seen in up.seen]
    assert [len(ids) for ids in sent] == [1, 1, 1]
    assert [ids[0] for ids in sent] == answers.rids
    assert all(OURS.fullmatch(rid) for rid in answers.rids)
    assert len(set(answers.rids)) == 3


async def test_a_trusted_proxys_id_reaches_the_upstream_and_the_record(
    gateway: Start, connect: Connect
) -> None:
    answers = Answers()
    async with http_upstream() as up:
        gw = await gateway(forward_to(up.url), on_response=answers, ids_from=lambda ip: True)
        c = await connect(gw.port)
        await c.send(get("/", extra="X-Request-Id: edge-42\r\n"))
        assert (await c.read_response()).status == 200
        await c.send(get("/", extra="X-Request-Id: not one\r\n"))  # replaced, still served
        assert (await c.read_response()).status == 200
        await eventually(lambda: len(answers.rids) == 2, what="two records")
    assert [ids_of(seen.headers) for seen in up.seen] == [["edge-42"], [answers.rids[1]]]
    assert answers.rids[0] == "edge-42"
    assert OURS.fullmatch(answers.rids[1])


async def test_an_error_page_shows_the_id_its_header_and_record_carry(
    gateway: Start, connect: Connect
) -> None:
    answers = Answers()
    async with http_upstream() as up:
        url = up.url  # closed: nothing listens there now
    gw = await gateway(forward_to(url), on_response=answers)
    c = await connect(gw.port)
    await c.send(get())
    r = await c.read_response()
    assert r.status == 502
    rid = r.header("x-request-id")
    assert rid is not None
    assert r.body == b"502 Bad Gateway\nrequest id: %s\n" % rid.encode()
    await eventually(lambda: answers.rids == [rid], what="the record")


async def test_a_head_refused_while_parsing_gets_an_id_on_its_page_and_record(
    gateway: Start, connect: Connect
) -> None:
    answers = Answers()
    gw = await gateway(forward_to("http://127.0.0.1:9"), on_response=answers)
    c = await connect(gw.port)
    await c.send(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
    r = await c.read_response()
    assert r.status == 431
    assert r.body == r.page()
    await eventually(lambda: answers.rids == [r.header("x-request-id")], what="the record")


async def test_the_gateways_own_answer_carries_the_id(gateway: Start, connect: Connect) -> None:
    answers = Answers()

    def handler(_head: RequestHead) -> Decision:
        return Respond(401, (("content-type", "application/json"),), b'{"error":"login"}')

    gw = await gateway(handler, on_response=answers, ids_from=lambda ip: True)
    c = await connect(gw.port)
    await c.send(get() + get(extra="X-Request-Id: from-the-edge\r\n"))
    first, second = await c.read_response(), await c.read_response()
    assert (first.status, second.status) == (401, 401)
    assert OURS.fullmatch(first.header("x-request-id") or "")
    assert second.header("x-request-id") == "from-the-edge"
    await eventually(lambda: len(answers.rids) == 2, what="two records")
    assert answers.rids == [first.header("x-request-id"), "from-the-edge"]


async def test_a_websockets_two_records_and_its_upstream_share_one_id(
    gateway: Start, connect: Connect
) -> None:
    heads: list[bytes] = []

    async def serve_(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        writer.write(SWITCHED)
        await writer.drain()
        await reader.read()

    answers = Answers()
    ends: list[TunnelEnded] = []
    async with raw_upstream(serve_) as up:
        gw = await gateway(upgrade_to(up.url), on_response=answers, on_tunnel_end=ends.append)
        c = await connect(gw.port)
        await c.send(get(extra=WS_FIELDS))
        await c.reader.readuntil(b"\r\n\r\n")
        c.writer.close()
        await eventually(lambda: ends != [], what="the tunnel's end")
    [sent] = heads
    [rid] = answers.rids
    assert OURS.fullmatch(rid)
    assert sent.count(b"x-request-id: ") == 1
    assert b"\r\nx-request-id: %s\r\n" % rid.encode() in sent
    assert ends[0].rid == rid


def test_the_gateway_keeps_ids_from_its_trusted_proxies_only(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"LYCHGATE_TRUSTED_PROXIES": "10.0.0.0/8"})
    ids = RequestIds(trusted_ids(settings))
    assert ids.of("10.1.2.3", (("x-request-id", "lb-7"),)) == "lb-7"
    assert ids.of("203.0.113.9", (("x-request-id", "lb-7"),)) != "lb-7"
    assert ids.of("127.0.0.1", (("x-request-id", "lb-7"),)) != "lb-7"
    assert trusted_ids(load_settings(tmp_path, {})) is trusts_nobody


async def test_the_log_of_a_failure_names_the_id_the_page_shows(
    gateway: Start, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(_head: RequestHead) -> Decision:
        raise RuntimeError("a bug")

    gw = await gateway(handler)
    c = await connect(gw.port)
    with caplog.at_level(logging.ERROR, logger="lychgate.gateway.http.connection"):
        await c.send(get())
        r = await c.read_response()
    assert (r.status, r.body) == (500, r.page())
    [record] = [rec for rec in caplog.records if "answering 500" in rec.getMessage()]
    assert f"(request {r.header('x-request-id')})" in record.getMessage()


@pytest.mark.parametrize(
    ("status", "error"), [(403, "forbidden"), (404, "not_found"), (503, "unavailable")]
)
async def test_admissions_pages_show_the_id_their_header_carries(
    gateway: Start, connect: Connect, status: int, error: str
) -> None:
    answers = Answers()
    gw = await gateway(lambda head: deny(status, error, head), on_response=answers)
    c = await connect(gw.port)
    await c.send(get(extra="Accept: text/html\r\n") + get(extra="Accept: application/json\r\n"))
    page, api = await c.read_response(), await c.read_response()
    rid = page.header("x-request-id")
    assert rid is not None
    assert OURS.fullmatch(rid)
    assert f"<p>Request id: <code>{rid}</code></p>".encode() in page.body
    assert api.header("x-request-id") not in (None, rid)
    assert b"request" not in api.body  # an API client reads the header: JSON stays as it was
    await eventually(lambda: answers.rids == [rid, api.header("x-request-id")], what="records")
