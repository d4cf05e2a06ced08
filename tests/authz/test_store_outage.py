"""When the store fails, authz denies (SECURITY.md item 9): a 503 and nothing else.

Each test breaks one store call of one flow (:mod:`authz.outage`) and checks that the answer
is the fail-closed 503, with no cookie, no session, no code and no token, and that nothing of
the error (its data directory and socket path, a traceback, a module path) reaches the client.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI

from authz.conftest import Clock
from authz.device_fixtures import SignedClient, enroll_key, pending_login
from authz.login_fixtures import API, STATE, add_app, approve, browser, enrolled, finish, start
from authz.outage import (
    FlakyStore,
    assert_leaks_nothing,
    authz,
    count_rows,
    flaky,
    leaky_message,
)
from fixtures.store import make_session
from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import issue_handoff
from lychgate.domain import LoginStatus
from lychgate.errors import StoreError
from lychgate.gateway.feed_http import REDEEM_PATH
from lychgate.store.schema import one_time_codes, sessions

__all__ = ["authz", "browser", "flaky"]  # fixtures used by name

UNAVAILABLE = {"error": "unavailable"}


def break_store(ctx: AuthzContext, flaky: FlakyStore, repository: str, method: str) -> None:
    flaky.fail(repository, method, lambda: StoreError(leaky_message(ctx)))


def assert_denied(ctx: AuthzContext, r: httpx.Response) -> None:
    """The JSON 503, no cookie of any kind, nothing leaked."""
    assert (r.status_code, r.json()) == (503, UNAVAILABLE)
    assert r.headers.get_list("set-cookie") == []
    assert_leaks_nothing(ctx, r.text)


@pytest.mark.parametrize("call", ["login_requests.create", "audit.append"])
async def test_starting_a_login_fails_closed(
    ctx: AuthzContext, flaky: FlakyStore, browser: httpx.AsyncClient, call: str
) -> None:
    """No binding cookie, so no browser can follow a request that may half exist."""
    break_store(ctx, flaky, *call.split("."))
    r = await browser.post(API, json={})
    assert_denied(ctx, r)
    assert r.headers["cache-control"] == "no-store"


async def test_the_login_page_fails_closed_with_a_plain_page(
    ctx: AuthzContext, flaky: FlakyStore, browser: httpx.AsyncClient
) -> None:
    break_store(ctx, flaky, "login_requests", "create")
    r = await browser.get("/.lychgate/login", headers={"accept": "text/html,*/*;q=0.8"})
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert "unavailable" in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers.get_list("set-cookie") == []
    assert_leaks_nothing(ctx, r.text)


@pytest.mark.parametrize(
    "call",
    ["devices.get", "devices.record_use", "login_requests.get", "login_requests.approve"],
)
async def test_approving_from_a_device_fails_closed(
    ctx: AuthzContext,
    flaky: FlakyStore,
    client: httpx.AsyncClient,
    clock: Clock,
    call: str,
) -> None:
    """The request stays pending and no approval is recorded."""
    who = await enroll_key(ctx)
    login = await pending_login(ctx, number=42)
    break_store(ctx, flaky, *call.split("."))
    r = await SignedClient(client, clock, who).post(f"/login/{login.id}/approve", {"number": 42})
    assert_denied(ctx, r)
    assert (await ctx.store.login_requests.get(login.id)).status is LoginStatus.PENDING
    assert await ctx.store.audit.list(action_prefix="login.approved") == []


@pytest.mark.parametrize(
    "call",
    [
        "login_requests.get",
        "users.get",
        "sessions.create",
        "login_requests.finish",
        "audit.append",
        "apps.get_by_slug",
    ],
)
async def test_finishing_a_login_fails_closed(
    ctx: AuthzContext,
    authz: FastAPI,
    flaky: FlakyStore,
    browser: httpx.AsyncClient,
    call: str,
) -> None:
    """No session cookie (and no handoff code: a finish never makes one)."""
    await add_app(authz, ctx)  # the one app: a good finish leads to its start URL
    person = await enrolled(ctx)
    created = await start(browser, "/wiki")
    await approve(ctx, created["id"], person)
    break_store(ctx, flaky, *call.split("."))
    assert_denied(ctx, await finish(browser, created["id"]))
    assert "lychgate_session" not in browser.cookies
    assert await count_rows(ctx.store, one_time_codes) == 0


@pytest.mark.parametrize("call", ["sessions.get", "apps.get_by_slug", "one_time_codes.add"])
async def test_opening_an_app_with_a_state_fails_closed(
    ctx: AuthzContext, authz: FastAPI, flaky: FlakyStore, browser: httpx.AsyncClient, call: str
) -> None:
    """A plain 503 page: no redirect, so no code and no callback URL."""
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], person)
    assert (await finish(browser, created["id"])).status_code == 200
    break_store(ctx, flaky, *call.split("."))
    browser.cookies.set("lychgate_state", STATE)  # as the gateway's start set it
    r = await browser.get(
        f"/.lychgate/open/{app.slug}",
        params={"state": STATE},
        headers={"accept": "text/html,*/*;q=0.8"},
    )
    assert r.status_code == 503
    assert "location" not in r.headers
    assert r.headers.get_list("set-cookie") == []
    assert_leaks_nothing(ctx, r.text)
    assert await count_rows(ctx.store, one_time_codes) == 0


@pytest.mark.parametrize(
    "call",
    [
        "one_time_codes.redeem",
        "sessions.get",
        "users.get",
        "apps.get_by_slug",
        "signing_keys.list",
    ],
)
async def test_redeeming_a_handoff_code_fails_closed(
    ctx: AuthzContext, authz: FastAPI, flaky: FlakyStore, client: httpx.AsyncClient, call: str
) -> None:
    """No app token for the gateway."""
    app = await add_app(authz, ctx)
    person = await enrolled(ctx)
    session = make_session(person.user.id)
    await ctx.store.sessions.create(session)
    code = await issue_handoff(ctx, session.id, app.slug)
    break_store(ctx, flaky, *call.split("."))
    r = await client.post(REDEEM_PATH, json={"code": code})
    assert_denied(ctx, r)
    assert "token" not in r.text


async def test_a_failed_session_insert_leaves_no_session(
    ctx: AuthzContext, flaky: FlakyStore, browser: httpx.AsyncClient
) -> None:
    """The outage really was where the test put it: nothing reached the sessions table."""
    person = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], person)
    break_store(ctx, flaky, "sessions", "create")
    assert (await finish(browser, created["id"])).status_code == 503
    assert await count_rows(ctx.store, sessions) == 0


async def test_a_failed_finish_leaves_no_live_session(
    ctx: AuthzContext, flaky: FlakyStore, browser: httpx.AsyncClient
) -> None:
    """The session row is written before the request is marked finished; when that second
    write fails, the row is revoked, so no live session outlives the failed finish."""
    person = await enrolled(ctx)
    created = await start(browser)
    await approve(ctx, created["id"], person)
    break_store(ctx, flaky, "login_requests", "finish")
    assert (await finish(browser, created["id"])).status_code == 503
    sessions_now = await ctx.store.sessions.list_for_user(person.user.id)
    assert len(sessions_now) == 1  # the row was written ...
    assert sessions_now[0].revoked  # ... and revoked when the finish failed


async def test_an_outage_is_logged_once_per_kind_and_window_not_per_request(
    ctx: AuthzContext,
    flaky: FlakyStore,
    browser: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every request fails during an outage, and each is one a client chose to send: a line
    # with a traceback for each would let anyone flood the log.
    break_store(ctx, flaky, "login_requests", "create")
    with caplog.at_level(logging.ERROR, logger="lychgate.authz.app"):
        for _ in range(5):
            assert_denied(ctx, await browser.post(API, json={}))
    assert len([r for r in caplog.records if "failed closed" in r.getMessage()]) == 1


async def _look_logs(
    flaky: FlakyStore, caplog: pytest.LogCaptureFixture, error: Exception, looks: int
) -> list[logging.LogRecord]:
    """What the publisher logs while ``looks`` of its looks fail with ``error``."""
    failed: list[int] = []

    def fail() -> Exception:
        failed.append(1)
        return error

    with caplog.at_level(logging.ERROR, logger="lychgate.authz.snapshots"):
        flaky.fail("config_changes", "version", fail)
        async with asyncio.timeout(10):
            while len(failed) < looks:
                await asyncio.sleep(0.01)
    return [r for r in caplog.records if r.name == "lychgate.authz.snapshots"]


async def test_failed_snapshot_looks_are_logged_once_per_kind_and_window(
    flaky: FlakyStore, authz: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # authz looks twice a second (here every 0.05 s): with the database down, a traceback for
    # each look made about 330 log lines a second.
    records = await _look_logs(flaky, caplog, StoreError("connection refused"), 8)
    lines = [r for r in records if "could not read the config store" in r.getMessage()]
    assert len(lines) == 1  # eight looks failed: one line in the window
    assert lines[0].exc_info is None  # the driver's reason, not eighty lines of its frames
    assert "connection refused" in lines[0].getMessage()


async def test_an_unexpected_failure_of_a_look_keeps_its_traceback(
    flaky: FlakyStore, authz: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    bug = KeyError("not a store error: a bug, whose traceback is the point")
    records = await _look_logs(flaky, caplog, bug, 3)
    lines = [r for r in records if "could not rebuild the config snapshot" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].exc_info is not None
