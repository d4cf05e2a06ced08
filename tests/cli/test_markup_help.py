"""Help texts are Rich markup: a literal ``[limits]`` in one vanished ("follows  again")."""

from __future__ import annotations

from collections.abc import Iterator

import typer
from rich.text import Text
from typer.core import TyperGroup

from cli.test_cli import lychgate
from lychgate.cli.main import app


def _help_texts() -> Iterator[tuple[str, str]]:
    """Every command's and option's help text, by where it is."""
    todo = [("lychgate", typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        if isinstance(command, TyperGroup):
            todo += [(f"{path} {name}", sub) for name, sub in command.commands.items()]
        if command.help:
            yield path, command.help
        for param in command.params:
            help_text = getattr(param, "help", None)
            if help_text:
                yield f"{path} {param.name}", help_text


def test_app_update_help_shows_limits() -> None:
    code, out = lychgate("app", "update", "--help", env={"COLUMNS": "300"})
    assert code == 0, out
    assert "so that it follows [limits] again" in out


def test_no_help_text_loses_a_bracket_to_markup() -> None:
    """What every help text shows is what it says, bar the escapes that keep ``[`` literal."""
    texts = dict(_help_texts())
    assert "lychgate app update default" in texts
    for where, help_text in texts.items():
        shown = Text.from_markup(help_text).plain
        assert shown == help_text.replace("\\[", "["), where
