"""An unexpected exception (a bug) is a bare 500 that leaks nothing (SECURITY.md item 9).

The exception comes from a store call (:mod:`authz.outage`) and its message carries the data
directory and the socket path; the answer must show neither, nor a traceback or module path.
The client does not re-raise app exceptions, so it sees exactly what a browser would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from authz.login_fixtures import API
from authz.outage import FlakyStore, assert_leaks_nothing, authz, flaky, leaky_message
from lychgate.authz.context import AuthzContext
from lychgate.gateway.feed_http import REDEEM_PATH

__all__ = ["authz", "flaky"]  # fixtures used by name


@pytest.fixture
async def lenient(authz: FastAPI, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client that gets the 500 response instead of the app's exception."""
    secret = ctx.secrets.internal_token.reveal()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=authz, raise_app_exceptions=False),
        base_url=ctx.settings.public_url,
        headers={"authorization": f"Bearer {secret}", "accept": "text/html,*/*"},
    ) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body", "call"),
    [
        ("GET", "/.lychgate/login", None, "login_requests.create"),
        ("POST", API, {}, "login_requests.create"),
        ("POST", REDEEM_PATH, {"code": "x" * 43}, "one_time_codes.redeem"),
        ("GET", "/.lychgate/jwks.json", None, "signing_keys.list"),
    ],
)
async def test_a_bug_is_a_bare_500(
    ctx: AuthzContext,
    flaky: FlakyStore,
    lenient: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, str] | None,
    call: str,
) -> None:
    repository, name = call.split(".")
    flaky.fail(repository, name, lambda: RuntimeError(leaky_message(ctx)))
    r = await lenient.request(method, path, json=body)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers.get_list("set-cookie") == []
    assert_leaks_nothing(ctx, r.text)


async def test_a_422_never_echoes_what_was_sent(client: httpx.AsyncClient) -> None:
    # FastAPI's default 422 copies each bad value back into the answer, and a bad value may
    # be a code or a token that a page or a proxy log then keeps.
    r = await client.post(
        "/.lychgate/api/v1/login",
        json={"rd": "/x", "token": "TOPSECRETVALUE"},
        headers={"content-type": "application/json", "sec-fetch-site": "same-origin"},
    )
    assert r.status_code == 422
    assert "TOPSECRETVALUE" not in r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "token"]
    assert set(error) == {"type", "loc", "msg"}
