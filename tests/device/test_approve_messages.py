"""What ``lychgate device approve`` says when its argument is a file name that names nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from device.fakeserver import FakeServer
from lychgate.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("name", ["nothere.png", "shots/qr.png"])
def test_a_missing_screenshot_is_named(
    server: FakeServer, key_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["device", "approve", name, "--yes", "--key", str(key_path)]
    result = runner.invoke(app, args, obj=server.connector(), env={"COLUMNS": "200"})
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"no such file: {name}" in said
    assert "expected a sign-in link" not in said
    assert server.signed_calls == []
