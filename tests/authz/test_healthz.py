"""authz's health check (``/.lychgate/authz/healthz``): ok while the store answers, a bare 503
when it does not, with nothing of the error in it (SECURITY.md item 9)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from authz.outage import FlakyStore, assert_leaks_nothing, authz, flaky, leaky_message
from lychgate.authz.context import AuthzContext
from lychgate.errors import StoreError

__all__ = ["authz", "flaky"]  # fixtures used by name

HEALTHZ = "/.lychgate/authz/healthz"


@pytest.fixture
async def anyone(authz: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the internal secret: the check is public."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=authz), base_url="http://authz"
    ) as c:
        yield c


async def test_ok_while_the_store_answers(anyone: httpx.AsyncClient) -> None:
    r = await anyone.get(HEALTHZ)
    assert (r.status_code, r.text) == (200, "ok\n")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(StoreError, id="store-error"),
        pytest.param(ConnectionRefusedError, id="refused"),  # what the driver raises
        pytest.param(RuntimeError, id="anything-else"),
    ],
)
async def test_a_store_that_does_not_answer_is_a_bare_503(
    ctx: AuthzContext,
    flaky: FlakyStore,
    anyone: httpx.AsyncClient,
    error: Callable[[str], Exception],
) -> None:
    flaky.fail_connections(lambda: error(leaky_message(ctx)))
    r = await anyone.get(HEALTHZ)
    assert (r.status_code, r.text) == (503, "unavailable\n")
    assert_leaks_nothing(ctx, r.text)
    assert_leaks_nothing(ctx, str(r.headers))
