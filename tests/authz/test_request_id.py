"""authz names each request by the gateway's ``X-Request-Id``: in its log lines and on its 503
page, so that the id a user quotes leads to authz's lines as well as the gateway's."""

from __future__ import annotations

import logging

import httpx
import pytest

from authz.login_fixtures import browser
from authz.outage import FlakyStore, authz, flaky, leaky_message
from lychgate.authz.context import AuthzContext
from lychgate.authz.request_id import request_id
from lychgate.errors import StoreError
from lychgate.request_log import NOTE_FIELD, RequestNote

__all__ = ["authz", "browser", "flaky"]  # fixtures used by name

RID = "5f1c0d2e9a7b3c4d5e6f7a8b"
PAGE = {"accept": "text/html,*/*;q=0.8"}


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ([(b"x-request-id", RID.encode())], RID),
        ([(b"X-Request-ID", b"a1b2-uuid-like-0000")], "a1b2-uuid-like-0000"),
        ([(b"x-request-id", b"x" * 128)], "x" * 128),
        ([], ""),
        ([(b"x-request-id", b"a"), (b"x-request-id", b"b")], ""),  # two: neither
        ([(b"x-request-id", b"")], ""),
        ([(b"x-request-id", b"x" * 129)], ""),
        ([(b"x-request-id", b"abc\r\nforged line")], ""),
        ([(b"x-request-id", b'abc"def')], ""),
        ([(b"x-request-id", b"<b>x</b>")], ""),
        ([(b"x-request-id", "caf\u00e9".encode())], ""),
    ],
)
def test_which_id_names_the_request(headers: list[tuple[bytes, bytes]], named: str) -> None:
    assert request_id(headers) == named


async def test_the_503_page_and_its_log_line_name_the_request(
    ctx: AuthzContext,
    flaky: FlakyStore,
    browser: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky.fail("login_requests", "create", lambda: StoreError(leaky_message(ctx)))
    caplog.handler.addFilter(RequestNote())  # as the commands' stderr handler has it
    with caplog.at_level(logging.ERROR, logger="lychgate.authz.app"):
        r = await browser.get("/.lychgate/login", headers={**PAGE, "x-request-id": RID})
    assert r.status_code == 503
    assert f"<p>Request id: <code>{RID}</code></p>" in r.text
    [record] = [r for r in caplog.records if "failed closed" in r.getMessage()]
    assert getattr(record, NOTE_FIELD) == f" (request {RID})"


@pytest.mark.parametrize("given", [None, "no spaces allowed", "<script>"])
async def test_without_an_id_it_shows_none(
    ctx: AuthzContext, flaky: FlakyStore, browser: httpx.AsyncClient, given: str | None
) -> None:
    flaky.fail("login_requests", "create", lambda: StoreError(leaky_message(ctx)))
    headers = PAGE if given is None else {**PAGE, "x-request-id": given}
    r = await browser.get("/.lychgate/login", headers=headers)
    assert r.status_code == 503
    assert "Request id" not in r.text
    assert "<script>" not in r.text
