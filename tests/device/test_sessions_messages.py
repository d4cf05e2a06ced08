"""What ``lychgate device sessions revoke`` says of a session that has already ended."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from device.fakeserver import THIS_BROWSER, FakeServer
from lychgate.cli.main import app

runner = CliRunner()


def revoke(server: FakeServer, key_path: Path, handle: str) -> tuple[int, str]:
    args = ["device", "sessions", "revoke", handle, "--key", str(key_path)]
    result = runner.invoke(app, args, obj=server.connector(), env={"COLUMNS": "200"})
    return result.exit_code, " ".join(result.output.split())


def test_an_ended_session_says_so(server: FakeServer, key_path: Path) -> None:
    server.override = (
        409,
        {"error": "session_ended", "message": "that session has already ended", "field": "id"},
    )
    code, said = revoke(server, key_path, "AAfDt_g3L6iVragphIvArQ")
    assert code == 1
    assert said == "error: revocation: that session has already ended"


def test_revoking_twice_says_the_session_ended(server: FakeServer, key_path: Path) -> None:
    server.sessions["s1"] = dict(THIS_BROWSER)
    assert revoke(server, key_path, "s1") == (0, "revoked session s1")
    code, said = revoke(server, key_path, "s1")
    assert (code, said) == (1, "error: revocation: that session has already ended")


def test_an_unknown_session_is_no_such_session(server: FakeServer, key_path: Path) -> None:
    assert revoke(server, key_path, "nope") == (1, "error: revocation: no such session")
