"""How init's summary and the help of the commands that print next steps are laid out.

typer keeps a single line break inside a help paragraph, so a sentence broken over two
source lines came out broken at that word whatever the terminal's width ("for a --ttl outside"
on one line, "1 to" on the next). init's summary put its third column wherever the second
column's word ended.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from cli.test_cli import lychgate
from lychgate.cli.main import app


def _help(path: str) -> str:
    command = typer.main.get_command(app)
    for name in path.split():
        assert isinstance(command, TyperGroup)
        command = command.commands[name]
    assert command.help is not None
    return command.help


@pytest.mark.parametrize("path", ["serve", "token mint", "ca rotate", "user update"])
def test_no_help_paragraph_is_broken_inside(path: str) -> None:
    for paragraph in _help(path).strip().split("\n\n"):
        assert "\n" not in paragraph.strip(), paragraph


def test_the_help_sentences_show_whole_on_a_wide_terminal() -> None:
    code, out = lychgate("serve", "--help", env={"COLUMNS": "200"})
    assert code == 0, out
    assert "Creates the deployment first if it does not exist, as `lychgate init` does." in out
    code, out = lychgate("token", "mint", "--help", env={"COLUMNS": "200"})
    assert "for a --ttl outside 1 to session_ttl:" in out


def test_the_init_summary_is_in_columns(data_dir: Path) -> None:
    code, out = lychgate("init", "--dir", str(data_dir), "--public-url", "https://localhost:18320")
    assert code == 0, out
    rows = [re.match(r"  (\S+) +(\S+) +", line) for line in out.splitlines()]
    columns = [row for row in rows if row is not None][:5]
    assert [row[1] for row in columns] == ["config", "secrets", "store", "keys", "tls"]
    assert len({row.end() for row in columns}) == 1, out  # the third column starts in one place
    code, again = lychgate("init", "--dir", str(data_dir))
    kept = [line for line in again.splitlines() if line.startswith("  keys")]
    assert kept == ["  keys       kept"]
