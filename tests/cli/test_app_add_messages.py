"""``lychgate app add`` takes the slug as ``app update`` does (first, bare) or with --slug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.test_cli import lychgate

ADD = ("app", "add", "--name", "Files", "--upstream", "http://127.0.0.1:18450")


@pytest.fixture
def d(data_dir: Path) -> str:
    where = str(data_dir)
    assert lychgate("init", "--dir", where)[0] == 0
    return where


def slugs(d: str) -> list[str]:
    code, out = lychgate("app", "list", "--dir", d, "--json")
    assert code == 0, out
    return [app["slug"] for app in json.loads(out)]


def one_line(out: str) -> str:
    return " ".join(out.split())


def test_the_slug_first_as_app_update_takes_it(d: str) -> None:
    code, out = lychgate("app", "add", "files2", *ADD[2:], "--dir", d)
    assert code == 0, out
    assert one_line(out) == "added files2 -> http://127.0.0.1:18450"
    assert slugs(d) == ["files2"]


def test_the_slug_option_still_works(d: str) -> None:
    code, out = lychgate(*ADD, "--slug", "files3", "--dir", d)
    assert code == 0, out
    assert slugs(d) == ["files3"]


def test_no_slug_says_where_it_goes(d: str) -> None:
    code, out = lychgate(*ADD, "--dir", d)
    assert code == 2
    assert "give the app's slug: lychgate app add SLUG --name NAME --upstream URL" in (
        one_line(out)
    )
    assert slugs(d) == []


def test_two_different_slugs_are_refused(d: str) -> None:
    code, out = lychgate("app", "add", "files2", *ADD[2:], "--slug", "other", "--dir", d)
    assert code == 2
    assert "two slugs: files2 and --slug other; give one" in one_line(out)
    assert slugs(d) == []


def test_the_same_slug_twice_is_one(d: str) -> None:
    code, out = lychgate("app", "add", "files2", *ADD[2:], "--slug", "files2", "--dir", d)
    assert code == 0, out
    assert slugs(d) == ["files2"]
