"""The long-running commands' logging: plain lines on stderr, httpx's request lines kept out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from lychgate.cli.logs import setup_logging
from lychgate.request_log import CURRENT


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    """Leave logging as pytest set it up."""
    root, chatty = logging.getLogger(), logging.getLogger("httpx")
    handlers, level, chatty_level = root.handlers[:], root.level, chatty.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    chatty.setLevel(chatty_level)


def test_httpx_request_lines_are_kept_out_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    # Every app opened logged the gateway's call to authz, a line per sign-in that said nothing.
    setup_logging("info")
    logging.getLogger("httpx").info('HTTP Request: POST http://authz.internal/x "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("a warning still shows")
    logging.getLogger("lychgate.gateway.feed").info("config feed: applied snapshot 1")
    err = capsys.readouterr().err
    assert "HTTP Request" not in err
    assert "a warning still shows" in err
    assert "applied snapshot 1" in err


def test_debug_shows_them(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("debug")
    logging.getLogger("httpx").info("HTTP Request: GET http://authz.internal/feed")
    assert "HTTP Request" in capsys.readouterr().err


async def test_a_line_logged_while_serving_a_request_names_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("info")
    log = logging.getLogger("lychgate.authz.internal")

    async def serving(rid: str) -> None:
        CURRENT.set(rid)  # as authz's RequestIdScope does, in the request's own task
        await asyncio.sleep(0)
        log.info("handoff refused: spent")

    await asyncio.gather(serving("a1b2c3"), serving("0f0f0f"), serving(""))
    log.warning("outside any request")
    lines = capsys.readouterr().err.splitlines()
    assert [line.partition(": ")[2] for line in lines] == [
        "handoff refused: spent (request a1b2c3)",
        "handoff refused: spent (request 0f0f0f)",
        "handoff refused: spent",
        "outside any request",
    ]
    # uvicorn's own line for an exception that left the app is a record like any other.
    token = CURRENT.set("feedbeef")
    logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    CURRENT.reset(token)
    assert capsys.readouterr().err.endswith(
        "uvicorn.error: Exception in ASGI application (request feedbeef)\n"
    )
