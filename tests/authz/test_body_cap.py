"""authz refuses request content over its cap before reading it (lychgate.authz.bodycap).

FastAPI reads a JSON body whole before a route runs: without the cap, one unauthenticated
login request of a gigabyte made authz hold three times that (SECURITY.md item 8).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

import httpx
from fastapi import FastAPI
from starlette.types import Message

from authz.outage import count_rows
from lychgate.authz.context import AuthzContext
from lychgate.gateway.http.limits import CONTROL_PLANE_MAX_BODY
from lychgate.store.schema import login_requests

API = "/.lychgate/api/v1/login"
JSON = {"content-type": "application/json"}


def _browser(authz: FastAPI, ctx: AuthzContext) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=authz)
    return httpx.AsyncClient(transport=transport, base_url=ctx.settings.public_url)


async def test_a_declared_length_over_the_cap_is_refused_unread(authz: FastAPI) -> None:
    # A gigabyte announced: the answer comes before a byte of it is asked for.
    sent: list[Message] = []

    async def receive() -> NoReturn:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": API,
        "raw_path": API.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1073741824")],
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 8080),
    }
    await authz(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_a_chunked_body_is_cut_at_the_cap(authz: FastAPI, ctx: AuthzContext) -> None:
    pieces = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pieces
        yield b'{"rd": "'
        for _ in range(1000):  # 16 MB, had it all been read
            pieces += 1
            yield b"a" * 16384
        yield b'"}'

    async with _browser(authz, ctx) as browser:
        r = await browser.post(API, content=body(), headers=JSON)
    assert (r.status_code, r.json()) == (413, {"detail": "too_large"})  # as a declared one
    assert pieces <= CONTROL_PLANE_MAX_BODY // 16384 + 2  # read no further than the cap
    assert await count_rows(ctx.store, login_requests) == 0


async def test_a_wrong_media_type_over_the_cap_is_refused_before_reading(
    authz: FastAPI, ctx: AuthzContext
) -> None:
    async with _browser(authz, ctx) as browser:
        r = await browser.post(
            API,
            content=b"x" * (CONTROL_PLANE_MAX_BODY + 1),
            headers={"content-type": "text/plain"},
        )
    assert (r.status_code, r.json()) == (413, {"detail": "too_large"})


async def test_content_within_the_cap_is_served(authz: FastAPI, ctx: AuthzContext) -> None:
    padding = " " * (CONTROL_PLANE_MAX_BODY - 100)
    async with _browser(authz, ctx) as browser:
        r = await browser.post(API, content=f'{{"rd": "/x"}}{padding}'.encode(), headers=JSON)
    assert r.status_code == 201
