"""What ``lychgate device open`` says when no portal page of the browser got the request."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from device.fakeserver import THIS_BROWSER, FakeServer
from lychgate.cli.main import app

runner = CliRunner()


def open_wiki(server: FakeServer, key_path: Path) -> tuple[int, str]:
    args = ["device", "open", "wiki", "--key", str(key_path)]
    result = runner.invoke(app, args, obj=server.connector(), env={"COLUMNS": "200"})
    return result.exit_code, " ".join(result.output.split())


def test_no_browser_waiting_says_where_to_wait(server: FakeServer, key_path: Path) -> None:
    server.sessions["s1"] = dict(THIS_BROWSER)
    server.delivered = False
    assert open_wiki(server, key_path) == (
        1,
        "error: no browser of yours is waiting on the portal: open "
        "https://gate.example.test/.lychgate/ in your browser, then run this again",
    )


@pytest.mark.parametrize("delivered", [True, None], ids=["delivered", "older-server"])
def test_a_browser_got_it_or_the_server_cannot_tell(
    server: FakeServer, key_path: Path, delivered: bool | None
) -> None:
    server.sessions["s1"] = dict(THIS_BROWSER)
    server.delivered = delivered
    assert open_wiki(server, key_path) == (0, "opening wiki in your browser")
    assert server.opened == [("dev_cli", "wiki")]
