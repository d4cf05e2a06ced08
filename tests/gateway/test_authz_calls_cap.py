"""Calls to authz in flight are capped per worker (lychgate.gateway.authz_client).

Anyone can make the gateway call authz: a sign-in link with a made-up code needs no cookie. A
second of such links from one client used to queue thousands of calls in httpx's pool, whose
every turn walks every waiting request, and the worker answered nothing else (its health
check included) for 12 to 86 s; the calls whose clients had gone then logged a traceback each.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from fixtures.clocks import Ticks
from gateway.fake_authz import FakeAuthz
from gateway.test_endpoints import CODE, SINGLE, callback, fake_authz, header, run, setup
from gateway.waiting import eventually
from lychgate.gateway.authz_client import (
    AuthzBusy,
    AuthzUnavailable,
    CallBudget,
    HttpAuthzClient,
)
from lychgate.ids import SessionId
from lychgate.secret import Secret

__all__ = ["fake_authz"]  # a fixture, used by name


@pytest.mark.loopback
async def test_a_call_over_the_cap_is_refused_at_once(caplog: pytest.LogCaptureFixture) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # an authz that takes every call and answers none
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpAuthzClient(f"http://127.0.0.1:{port}", Secret("s"), max_calls=3)
    callers = [asyncio.ensure_future(client.redeem_code(f"code-{i}")) for i in range(3)]
    try:
        await eventually(lambda: len(held) == 3)
        with pytest.raises(AuthzBusy):
            await client.redeem_code("one-more")
        assert client.in_flight == 3
    finally:
        for caller in callers:  # their clients leave; the calls run on until authz goes
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
        await eventually(lambda: client.in_flight == 0)
        await client.aclose()
    # Each failed on its own, with nobody awaiting it: retrieved, not logged as a traceback.
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        del callers
        gc.collect()
    assert "never retrieved" not in caplog.text


async def test_the_callback_and_logout_answer_503_while_calls_are_at_the_cap() -> None:
    endpoints, _, _ = setup(SINGLE, fail=AuthzBusy("32 calls to authz in flight"))
    signin = await run(endpoints, SINGLE, callback(SINGLE, f"code={CODE}"))
    logout = await run(
        endpoints, SINGLE, SINGLE.head("/.lychgate/logout", cookies=[SINGLE.token(sid="s1")])
    )
    for answer in (signin, logout):
        assert answer.status == 503
        assert header(answer, "retry-after") == ["1"]
        assert answer.reason.endswith("failed: AuthzBusy")
    assert b"busy" in signin.body


async def test_failed_calls_are_logged_once_per_kind_in_10_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A flood against an authz that is down must not flood the log (THREAT_MODEL T9).
    endpoints, _, _ = setup(SINGLE, fail=AuthzUnavailable("authz unreachable (ConnectError)"))
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.endpoints"):
        for _ in range(50):
            answer = await run(endpoints, SINGLE, callback(SINGLE, f"code={CODE}"))
            assert answer.status == 502
    assert [r.getMessage() for r in caplog.records] == [
        "callback: code redemption failed: AuthzUnavailable"
    ]


def test_the_budget_allows_a_burst_then_its_rate() -> None:
    ticks = Ticks()
    budget = CallBudget(4.0, ticks)
    assert [budget.take() for _ in range(5)] == [True] * 4 + [False]
    ticks.now += 0.25  # a quarter of a second: one call more
    assert [budget.take() for _ in range(2)] == [True, False]
    ticks.now += 60.0  # idle for long: a burst again, never more
    assert [budget.take() for _ in range(5)] == [True] * 4 + [False]


@pytest.mark.loopback
async def test_calls_over_the_rate_are_refused_without_reaching_authz(
    fake_authz: tuple[FakeAuthz, str],
) -> None:
    # A healthy authz answers a flood as fast as it comes; the worker, at some milliseconds
    # of httpx a call, fell 15 s behind a 2 s flood while its calls in flight stayed few.
    server, base = fake_authz
    ticks = Ticks()
    client = HttpAuthzClient(base, Secret(server.secret), max_rate=3.0, clock=ticks)
    try:
        for i in range(3):
            await client.revoke_session(SessionId(f"s{i}"))
        with pytest.raises(AuthzBusy):
            await client.revoke_session(SessionId("s3"))
        ticks.now += 1.0
        await client.revoke_session(SessionId("s4"))
    finally:
        await client.aclose()
    assert server.revoked == ["s0", "s1", "s2", "s4"]
