"""Output into a pipe or a file is not hard-wrapped at 80 columns (or ``COLUMNS``).

A newline rich put in the middle of a path or an enrollment link makes it unusable to the
next tool, and a table fitted to 80 columns folded values such as ``127.0.0.\\n1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from cli.test_cli import lychgate
from lychgate.cli import common

NARROW = {"COLUMNS": "40"}
LONG_NAME = "A rather long display name, as some people have them, and more"
UPSTREAMS = {
    "wiki": "http://127.0.0.1:25001",
    "grafana": "unix:/run/some/rather/deep/directory/of/sockets/grafana.sock",
}


@pytest.fixture
def d(data_dir: Path) -> str:
    where = str(data_dir)
    assert lychgate("init", "--dir", where)[0] == 0
    return where


def lines_with(value: str, out: str) -> list[str]:
    return [line for line in out.splitlines() if value in line]


def test_a_long_line_is_one_line(tmp_path: Path) -> None:
    where = tmp_path / "a-deployment-directory-with-a-name-much-longer-than-forty-columns"
    code, out = lychgate("init", "--dir", str(where), env=NARROW)
    assert code == 0, out
    assert lines_with(f"Deployment {where}", out), out


def test_user_add_keeps_the_name_and_the_link_whole(d: str) -> None:
    code, out = lychgate("user", "add", LONG_NAME, "--dir", d, env=NARROW)
    assert code == 0, out
    assert lines_with(f"added user {LONG_NAME} (usr_", out), out
    (link,) = [word for word in out.split() if "/.lychgate/enroll/" in word]
    assert lines_with(link, out)


def test_a_piped_table_has_one_line_per_row(d: str) -> None:
    for slug, upstream in UPSTREAMS.items():
        code, out = lychgate(
            "app", "add", "--dir", d, "--slug", slug, "--name", f"{LONG_NAME} {slug}",
            "--upstream", upstream,
        )  # fmt: skip
        assert code == 0, out
    code, out = lychgate("app", "list", "--dir", d, env=NARROW)
    assert code == 0, out
    for slug, upstream in UPSTREAMS.items():
        (row,) = lines_with(f"│ {slug} ", out)
        assert f"{LONG_NAME} {slug}" in row
        assert upstream in row
    assert len(out.splitlines()) == 4 + 2  # top, header, rule, bottom, and the two rows


def test_a_piped_user_table_keeps_every_value_whole(d: str) -> None:
    email = "someone.with.a.rather.long.address@example.test"
    assert lychgate("user", "add", LONG_NAME, "--email", email, "--dir", d)[0] == 0
    (user,) = json.loads(lychgate("user", "list", "--json", "--dir", d)[1])
    code, out = lychgate("user", "list", "--dir", d, env=NARROW)
    assert code == 0, out
    (row,) = lines_with(user["id"], out)
    assert LONG_NAME in row
    assert email in row


def test_on_a_terminal_the_table_still_fits_its_width(
    d: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lychgate(
        "app", "add", "--dir", d, "--slug", "wiki", "--name", LONG_NAME,
        "--upstream", UPSTREAMS["grafana"],
    )[0] == 0  # fmt: skip
    terminal = Console(force_terminal=True, color_system=None, width=60, soft_wrap=True)
    monkeypatch.setattr(common, "out_console", terminal)
    code, out = lychgate("app", "list", "--dir", d)
    assert code == 0, out
    assert lines_with("│ wiki ", out)
    assert max(len(line) for line in out.splitlines()) <= 60, out
    assert "…" not in out  # long values fold onto more lines, never lost
