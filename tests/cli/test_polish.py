"""Usability fixes in the admin CLI: states said truly, ``--json`` where it was missing, host
errors that name the real problem, and flags shown in ``--help`` without a value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.test_cli import lychgate


@pytest.fixture
def deployment(data_dir: Path) -> Path:
    code, out = lychgate("init", "--dir", str(data_dir))
    assert code == 0, out
    return data_dir


@pytest.fixture
def subdomains(data_dir: Path) -> Path:
    code, out = lychgate(
        "init",
        "--dir",
        str(data_dir),
        "--public-url",
        "http://localhost:8080",
        "--routing",
        "subdomains",
        "--domain",
        "localhost",
    )
    assert code == 0, out
    return data_dir


def one_line(out: str) -> str:
    return " ".join(out.split())


def add_app(data_dir: Path, *more: str) -> tuple[int, str]:
    return lychgate(
        "app", "add", "--dir", str(data_dir),
        "--slug", "wiki", "--name", "Wiki", "--upstream", "http://127.0.0.1:9",
        *more,
    )  # fmt: skip


# 1. user disable/enable say when nothing changed


def test_disabling_a_disabled_user_says_so(deployment: Path) -> None:
    d = str(deployment)
    assert lychgate("user", "add", "Bob", "--dir", d)[0] == 0
    code, first = lychgate("user", "disable", "Bob", "--dir", d)
    assert code == 0, first
    assert first.startswith("disabled user Bob")
    code, again = lychgate("user", "disable", "Bob", "--dir", d)
    assert code == 0, again
    assert "is already disabled" in again
    assert not again.startswith("disabled")


def test_enabling_an_enabled_user_says_so(deployment: Path) -> None:
    d = str(deployment)
    assert lychgate("user", "add", "Bob", "--dir", d)[0] == 0
    code, out = lychgate("user", "enable", "Bob", "--dir", d)
    assert code == 0, out
    assert "is already enabled" in out
    lychgate("user", "disable", "Bob", "--dir", d)
    code, out = lychgate("user", "enable", "Bob", "--dir", d)
    assert code == 0, out
    assert out.startswith("enabled user Bob")


# 2 and 3. keys list: a true state, and --json


def test_a_key_rotated_away_before_it_signs_says_until_when(deployment: Path) -> None:
    d = str(deployment)
    for _ in range(2):  # within the 10 s head start: the first new key signs only briefly
        assert lychgate("keys", "rotate", "--dir", d)[0] == 0
    code, out = lychgate("keys", "list", "--json", "--dir", d)
    assert code == 0, out
    first, middle, newest = json.loads(out)
    assert middle["state"].startswith("published, signs from")
    assert " until " in middle["state"], middle
    assert middle["signs_until"] == newest["signs_from"]
    assert newest["state"].startswith("published, signs from")
    assert " until " not in newest["state"]
    assert first["state"].startswith("signing until")


def test_keys_list_json_after_a_compromised_rotation(deployment: Path) -> None:
    d = str(deployment)
    assert lychgate("keys", "rotate", "--dir", d)[0] == 0
    assert lychgate("keys", "rotate", "--compromised", "--dir", d)[0] == 0
    code, out = lychgate("keys", "list", "--json", "--dir", d)
    assert code == 0, out
    [key] = json.loads(out)
    assert key["state"] == "signing"
    assert key["signs_until"] is None
    assert key["verifies_until"] is None
    assert set(key) == {"kid", "signs_from", "signs_until", "verifies_until", "state"}


# 3. token mint --json


def test_token_mint_json(deployment: Path) -> None:
    d = str(deployment)
    assert lychgate("user", "add", "Ann", "--dir", d)[0] == 0
    assert add_app(deployment)[0] == 0
    code, out = lychgate("token", "mint", "--app", "wiki", "--user", "Ann", "--json", "--dir", d)
    assert code == 0, out
    minted = json.loads(out)
    assert minted["cookie"] == f"{minted['cookie_name']}={minted['token']}"
    assert minted["cookie_name"] == "lychgate"
    assert minted["session"]
    assert minted["expires_at"]


def test_token_mint_refuses_raw_with_json(deployment: Path) -> None:
    code, out = lychgate(
        "token", "mint", "--app", "wiki", "--user", "Ann", "--json", "--raw",
        "--dir", str(deployment),
    )  # fmt: skip
    assert code == 2
    assert "--raw or --json" in out


# 4. app hosts: the real problem first


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("localhost", "is the portal's host"),
        ("LOCALHOST.", "is the portal's host"),
        ("localhost:8080", "is the portal's host"),
        ("x.localhost:8080", "a host has no port: give x.localhost"),
        ("x.localhost:", "a host has no port: give x.localhost"),
    ],
)
def test_a_bad_host_is_told_what_is_wrong_with_it(subdomains: Path, host: str, why: str) -> None:
    code, out = add_app(subdomains, "--host", host)
    assert code != 0
    said = one_line(out)
    assert why in said, said
    assert "plain HTTP" not in said


def test_a_good_host_still_passes_and_a_foreign_one_is_still_plain_http(
    subdomains: Path,
) -> None:
    assert add_app(subdomains, "--host", "w.localhost")[0] == 0
    code, out = lychgate(
        "app", "update", "wiki", "--host", "w.example.com", "--dir", str(subdomains)
    )
    assert code != 0
    assert "plain HTTP" in one_line(out)


def test_host_in_single_host_mode_warns_that_it_has_no_effect(deployment: Path) -> None:
    code, out = add_app(deployment, "--host", "foo.localhost")
    assert code == 0, out
    said = one_line(out)
    assert "added wiki" in said
    assert "--host is used only in subdomains mode" in said
    code, out = lychgate("app", "update", "wiki", "--name", "W", "--dir", str(deployment))
    assert code == 0
    assert "subdomains mode" not in out  # only when --host is given


# 7. flags take no value


@pytest.mark.parametrize(
    "command",
    [["serve"], ["keys", "rotate"], ["user", "update"], ["app", "add"], ["keys", "list"], []],
)
def test_help_shows_no_value_for_flags(command: list[str]) -> None:
    code, out = lychgate(*command, "--help", env={"COLUMNS": "200"})
    assert code == 0, out
    assert "<bool>" not in out
    assert "<Path>" in out or not command  # options that take a value keep their type
