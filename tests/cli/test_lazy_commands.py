"""Commands are loaded only when they run: a device command does not start the server stacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from lychgate.cli.lazy import Lazy, LazyCommands, load_command
from lychgate.cli.main import _Commands, app

runner = CliRunner()

# What each kind of command may not import: the server stacks and the store.
SERVER_STACKS = ("fastapi", "sqlalchemy", "alembic", "lychgate.gateway", "lychgate.authz")


def imported_after(args: list[str]) -> set[str]:
    """The modules of SERVER_STACKS loaded by a fresh interpreter running ``lychgate ARGS``."""
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from lychgate.cli.main import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(' '.join(m for m in {SERVER_STACKS!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "args", [["--version"], ["device", "--help"], ["device", "approve", "--help"]]
)
def test_device_and_version_load_no_server_stack(args: list[str]) -> None:
    assert imported_after(args) == set()


def test_help_lists_the_commands_without_loading_any() -> None:
    assert imported_after(["--help"]) == set()


def test_a_store_command_loads_the_store_and_no_server() -> None:
    assert imported_after(["user", "list", "--help"]) == {"sqlalchemy", "alembic"}


def test_the_gateway_command_loads_no_authz_and_no_store() -> None:
    # A cluster's gateway nodes run it: each process, and each worker it forks, carried
    # FastAPI, SQLAlchemy and the database drivers for life (86 MiB private, now 43 MiB).
    assert imported_after(["gateway", "--help"]) == {"lychgate.gateway"}


def test_help_lists_every_command_with_its_summary() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = [line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")]
    commands = [name for name in listed if name in _Commands.lazy]
    assert commands == list(_Commands.lazy)
    assert "Manage users." in result.output
    assert "The CLI authenticator: enroll, approve sign-ins, open apps." in result.output
    assert "Run the authorization server alone." in result.output


@pytest.mark.parametrize("name", list(_Commands.lazy))
def test_each_target_loads_as_a_command_of_its_name(name: str) -> None:
    command = load_command(name, _Commands.lazy[name].target)
    assert command.name == name
    assert command.get_short_help_str()  # every command says what it does


def rendered_help(group: typer.core.TyperGroup, capsys: pytest.CaptureFixture[str]) -> str:
    with group.make_context("lychgate", [], resilient_parsing=True) as ctx:
        group.format_help(ctx, ctx.make_formatter())
    return capsys.readouterr().out


def test_the_summaries_listed_are_the_commands_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # no wrapping: a summary is one line either way
    group = typer.main.get_group(app)
    assert isinstance(group, _Commands)
    from_summaries = rendered_help(group, capsys)
    for name in _Commands.lazy:
        group.commands[name]  # loaded: listed from the command itself from now on
    from_commands = rendered_help(group, capsys)
    assert "Manage users." in from_summaries
    assert from_summaries == from_commands


def test_a_listing_stand_in_cannot_run() -> None:
    commands = LazyCommands({"a": Lazy(f"{__name__}:_hello", "Say hello.")}, {})
    stand_in = commands.listed()["a"]
    assert stand_in.get_short_help_str() == "Say hello."
    assert stand_in.callback is None
    assert commands["a"].callback is not None  # the real one, loaded to run


@pytest.mark.parametrize(
    ("typo", "meant"), [("devce", "'device'"), ("gatway", "'gateway'"), ("usr", "'user'")]
)
def test_a_mistyped_command_names_the_close_ones_not_yet_loaded(typo: str, meant: str) -> None:
    result = runner.invoke(app, [typo])
    assert result.exit_code == 2
    assert "Did you mean" in result.output
    assert meant in result.output


def test_an_unknown_command_with_nothing_close_is_refused_plainly() -> None:
    result = runner.invoke(app, ["zzzzzz"])
    assert result.exit_code == 2
    assert "No such command 'zzzzzz'." in result.output


def _hello() -> None:
    """Say hello."""
    typer.echo("hello")


def test_lazy_commands_load_once_keep_order_and_take_eager_ones() -> None:
    loads: list[str] = []

    class Counting(LazyCommands):
        def __getitem__(self, name: str) -> object:
            if name in self._targets and name not in self._loaded:
                loads.append(name)
            return super().__getitem__(name)

    eager = load_command("hello", f"{__name__}:_hello")
    hello = Lazy(f"{__name__}:_hello", "Say hello.")
    commands = Counting({"a": hello, "b": hello}, {"c": eager})
    assert list(commands) == ["a", "b", "c"]
    assert len(commands) == 3
    assert "a" in commands
    assert "zz" not in commands
    assert loads == []
    assert commands.get("zz") is None
    first = commands["b"]
    assert commands["b"] is first
    assert loads == ["b"]
    assert commands["c"] is eager
    assert loads == ["b"]
    commands["d"] = eager
    del commands["a"]
    assert list(commands) == ["b", "c", "d"]
    with pytest.raises(KeyError):
        commands["a"]
