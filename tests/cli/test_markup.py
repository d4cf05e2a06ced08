"""User- and data-derived text is shown as it is: ``[/]`` in a name is no Rich markup.

Every "added ..." line, table and error used to pass names through Rich markup, so a user,
device or app named ``[/]`` made the command crash with a traceback (after its change was
committed), and ``[red]Eve[/red]`` was shown as "Eve".
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.test_cli import lychgate
from fixtures.store import make_device
from lychgate.cli.common import styled
from lychgate.cli.main import app
from lychgate.domain import Device
from lychgate.ids import UserId
from lychgate.store import open_store

NAMES = ["[/]", "[red]Eve[/red]", "[bold]x", "back\\", "[link=http://evil.test]click[/link]"]


def one_line(out: str) -> str:
    return " ".join(out.split())


def run(*args: str) -> tuple[int, str]:
    """``lychgate`` that also fails on a traceback: a crash is not a refusal."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def d(data_dir: Path) -> str:
    where = str(data_dir)
    assert lychgate("init", "--dir", where)[0] == 0
    return where


def _user_id(d: str, email: str) -> str:
    users = json.loads(lychgate("user", "list", "--json", "--dir", d)[1])
    return str(next(u["id"] for u in users if u["email"] == email))


def _enrolled(data_dir: str, user_id: str, name: str) -> Device:
    device = make_device(UserId(user_id), name=name)

    async def add() -> None:
        async with await open_store(f"sqlite:///{Path(data_dir) / 'lychgate.db'}") as store:
            await store.devices.add(device)

    asyncio.run(add())
    return device


@pytest.mark.parametrize("name", NAMES)
def test_user_add_shows_the_name_and_still_prints_the_link(d: str, name: str) -> None:
    code, out = run("user", "add", name, "--dir", d)
    assert code == 0, out
    assert f"added user {name} (usr_" in out
    assert "/.lychgate/enroll/" in out  # printed after the name: it was lost to the crash


def test_user_list_shows_names_as_they_are(d: str) -> None:
    for n, name in enumerate(NAMES):
        assert run("user", "add", name, "--email", f"u{n}@x.test", "--dir", d)[0] == 0
    code, out = run("user", "list", "--dir", d, "--json")
    assert [u["name"] for u in json.loads(out)] == NAMES
    code, out = run("user", "list", "--dir", d)
    assert code == 0, out
    for name in NAMES:
        assert name in out, out


def test_a_namesake_note_shows_the_name(d: str) -> None:
    assert run("user", "add", "[/]", "--dir", d)[0] == 0
    code, out = run("user", "add", "[/]", "--dir", d)
    assert code == 0, out
    assert "2 users are now named '[/]'" in one_line(out)


def test_user_commands_show_the_name(d: str) -> None:
    assert run("user", "add", "[/]", "--email", "x@x.test", "--dir", d)[0] == 0
    for command, said in (
        ("enroll-link", "user [/] (usr_"),
        ("cancel-links", "enrollment link(s) cancelled"),
        ("disable", "disabled user [/] (usr_"),
        ("enable", "enabled user [/] (usr_"),
    ):
        code, out = run("user", command, "x@x.test", "--dir", d)
        assert code == 0, out
        assert said in one_line(out)
    code, out = run("user", "update", "x@x.test", "--admin", "--dir", d)
    assert code == 0, out
    assert "user [/] (usr_" in one_line(out)


def test_a_device_named_with_markup_is_listed_and_revoked(d: str) -> None:
    assert run("user", "add", "Ada", "--email", "ada@x.test", "--dir", d)[0] == 0
    device = _enrolled(d, _user_id(d, "ada@x.test"), "[/] [red]phone[/red]")
    code, out = run("user", "devices", "Ada", "--dir", d)
    assert code == 0, out
    assert "[/] [red]phone[/red]" in out
    code, out = run("user", "revoke-device", "Ada", device.id, "--dir", d)
    assert code == 0, out  # it exited 1 with a traceback, the device revoked nonetheless
    assert f"revoked device [/] [red]phone[/red] ({device.id})" in one_line(out)


def test_an_app_named_with_markup_is_listed(d: str) -> None:
    code, out = run(
        "app", "add", "--dir", d, "--slug", "wiki", "--name", "[bold]Wiki",
        "--upstream", "http://127.0.0.1:25001",
    )  # fmt: skip
    assert code == 0, out
    code, out = run("app", "update", "wiki", "--name", "[/]", "--dir", d)
    assert code == 0, out
    code, out = run("app", "list", "--dir", d)
    assert code == 0, out
    assert "│ [/]" in out
    run("app", "disable", "wiki", "--dir", d)
    assert "[/] (disabled)" in run("app", "list", "--dir", d)[1]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("user", "disable", "[/]"), "no user '[/]'"),
        (("user", "disable", "[red]Eve[/red]"), "no user '[red]Eve[/red]'"),
        (("app", "remove", "[/]"), "no app '[/]'"),
        (("app", "update", "[/]", "--name", "x"), "no app '[/]'"),
    ],
)
def test_errors_show_what_was_given(d: str, args: tuple[str, ...], said: str) -> None:
    code, out = run(*args, "--dir", d)
    assert code == 1, out
    assert one_line(out).startswith("error:"), out
    assert said in one_line(out), out


def test_token_mint_error_shows_the_app(d: str) -> None:
    assert run("user", "add", "Bob", "--email", "b@x.test", "--dir", d)[0] == 0
    code, out = run("token", "mint", "--app", "[/]", "--user", "b@x.test", "--dir", d)
    assert code == 1, out
    assert "no app '[/]'" in out


def test_a_data_directory_with_brackets_is_shown(tmp_path: Path) -> None:
    where = tmp_path / "[/]" / "[red]data[/red]"
    code, out = run("init", "--dir", str(where))
    assert code == 0, out
    assert f"Deployment {where}" in out


def test_our_own_markup_styles_and_values_stay_text() -> None:
    text = styled("added [bold]{}[/] ({!r}) at {:%Y}", "[/]x\\", "[red]", datetime(2030, 1, 2))
    assert text.plain == "added [/]x\\ ('[red]') at 2030"
    (bold,) = [s for s in text.spans if str(s.style) == "bold"]
    assert text.plain[bold.start : bold.end] == "[/]x\\"


@pytest.mark.parametrize("name", ["x\\\\", "a\\\\\\", "\\[bold]", "\\", "[/]\\\\[/]"])
def test_backslashes_in_a_value_are_shown_as_they_are(name: str) -> None:
    # Escaped values were left to Rich's backslash rules next to the template's tags: "x\\"
    # showed as "x\", and an odd number of three or more unmade the closing tag.
    text = styled("user [bold]{}[/] ({})", name, "id")
    assert text.plain == f"user {name} (id)"
    (bold,) = [s for s in text.spans if str(s.style) == "bold"]
    assert text.plain[bold.start : bold.end] == name


def test_our_own_markup_still_reaches_a_terminal() -> None:
    console = Console(force_terminal=True, color_system="standard", width=80)
    with console.capture() as captured:
        console.print(styled("[bold]Deployment[/] {}", "[red]d[/red]"))
    assert "\x1b[1mDeployment\x1b[0m [red]d[/red]" in captured.get()
