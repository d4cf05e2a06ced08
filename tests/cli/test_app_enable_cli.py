"""``lychgate app disable|enable`` over a real deployment directory.

What a disabled app means to gateways is tested in tests/deployment/test_app_enable.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.test_cli import lychgate


@pytest.fixture
def d(data_dir: Path) -> str:
    where = str(data_dir)
    assert lychgate("init", "--dir", where)[0] == 0
    add = ("app", "add", "--dir", where, "--name", "Wiki", "--upstream", "http://127.0.0.1:3000")
    assert lychgate(*add, "--slug", "wiki")[0] == 0
    return where


def listed(d: str) -> dict[str, bool]:
    code, out = lychgate("app", "list", "--dir", d, "--json")
    assert code == 0, out
    return {app["slug"]: app["enabled"] for app in json.loads(out)}


def one_line(out: str) -> str:
    return " ".join(out.split())


def test_disable_then_enable(d: str) -> None:
    code, out = lychgate("app", "disable", "wiki", "--dir", d)
    assert code == 0, out
    assert one_line(out) == (
        "disabled app wiki: gateways refuse it and close its open WebSockets and streams "
        "within a second"
    )
    assert listed(d) == {"wiki": False}

    code, out = lychgate("app", "enable", "wiki", "--dir", d)
    assert (code, one_line(out)) == (0, "enabled app wiki")
    assert listed(d) == {"wiki": True}


def test_asking_twice_succeeds_and_says_so(d: str) -> None:
    assert lychgate("app", "enable", "wiki", "--dir", d) == (0, "app wiki is already enabled\n")
    assert lychgate("app", "disable", "wiki", "--dir", d)[0] == 0
    assert lychgate("app", "disable", "wiki", "--dir", d) == (0, "app wiki is already disabled\n")
    assert listed(d) == {"wiki": False}


@pytest.mark.parametrize("command", ["disable", "enable"])
def test_an_unknown_app_fails_naming_it(d: str, command: str) -> None:
    code, out = lychgate("app", command, "nope", "--dir", d)
    assert code == 1
    assert one_line(out) == "error: slug: no app 'nope'"  # as `app remove` says it
    assert listed(d) == {"wiki": True}


def test_enable_refuses_a_host_taken_meanwhile(data_dir: Path) -> None:
    """The portal moved onto a disabled app's host: enabling it would clash, so it stays off."""
    d = str(data_dir)
    code, out = lychgate(
        "init", "--dir", d, "--public-url", "https://auth.example.com",
        "--routing", "subdomains", "--domain", "example.com",
    )  # fmt: skip
    assert code == 0, out
    code, out = lychgate(
        "app", "add", "--dir", d, "--slug", "sso", "--name", "SSO",
        "--upstream", "http://127.0.0.1:3000", "--host", "login.example.com",
    )  # fmt: skip
    assert code == 0, out
    assert lychgate("app", "disable", "sso", "--dir", d)[0] == 0
    moved = {"LYCHGATE_PUBLIC_URL": "https://login.example.com"}
    code, out = lychgate("app", "enable", "sso", "--dir", d, env=moved)
    assert code == 1
    assert "app sso: its host login.example.com is the portal's" in one_line(out)
    assert listed(d) == {"sso": False}
    assert lychgate("app", "enable", "sso", "--dir", d)[0] == 0


def test_help_lists_both() -> None:
    code, out = lychgate("app", "--help")
    assert code == 0
    assert "disable" in out
    assert "enable" in out


def test_the_app_table_marks_a_disabled_app(d: str) -> None:
    lychgate("app", "disable", "wiki", "--dir", d)
    _, out = lychgate("app", "list", "--dir", d)
    assert "(disabled)" in out
    lychgate("app", "enable", "wiki", "--dir", d)
    _, out = lychgate("app", "list", "--dir", d)
    assert "(disabled)" not in out


def test_the_app_table_shows_the_host_an_app_answers_on(data_dir: Path) -> None:
    # In subdomains mode an app without --host answers on <slug>.<domain>: the column was
    # blank for it.
    d = str(data_dir)
    init = ["init", "--dir", d, "--public-url", "https://auth.example.com"]
    assert lychgate(*init, "--routing", "subdomains", "--domain", "example.com")[0] == 0
    add = ("app", "add", "--dir", d, "--name", "W", "--upstream", "http://127.0.0.1:3000")
    assert lychgate(*add, "--slug", "wiki")[0] == 0
    assert lychgate(*add, "--slug", "crm", "--host", "crm.example.com")[0] == 0
    _, out = lychgate("app", "list", "--dir", d, env={"COLUMNS": "200"})  # no wrapped cells
    assert "wiki.example.com" in out
    assert "crm.example.com" in out
    _, out = lychgate("app", "list", "--dir", d, "--json")
    assert [a["host"] for a in json.loads(out)] == ["crm.example.com", None]  # as stored
