"""The long-running commands' logging: plain lines on stderr, httpx's request lines kept out."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lychgate.cli.logs import setup_logging


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
