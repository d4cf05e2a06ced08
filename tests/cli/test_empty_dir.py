"""An empty ``--dir`` is refused, not taken for the current directory.

``Path("")`` is ``Path(".")``: ``lychgate init --dir "$UNSET"`` set up a deployment in whatever
directory the shell was in, and narrowed it to 0700.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lychgate.cli.main import app


@pytest.mark.parametrize("command", [["init"], ["app", "list"], ["user", "list"]])
def test_an_empty_dir_is_refused_and_nothing_is_made(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--dir", ""])
    assert result.exit_code == 2
    assert "an empty data directory path" in result.output
    assert list(tmp_path.iterdir()) == []
