"""``lychgate app update --default LIMIT``: an app's own limit dropped, the listener's again.

There was no way back: once given, an app's own timeout or size could only be changed, and
``--read-timeout 0`` is refused.
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
    add = ("app", "add", "--dir", where, "--slug", "wiki", "--name", "Wiki")
    own = ("--read-timeout", "5", "--max-body", "1000", "--idle-timeout", "7")
    code, out = lychgate(*add, "--upstream", "http://127.0.0.1:3000", *own)
    assert code == 0, out
    return where


def own_limits(d: str) -> dict[str, object]:
    code, out = lychgate("app", "list", "--dir", d, "--json")
    assert code == 0, out
    app = json.loads(out)[0]
    return {k: app[k] for k in ("read_timeout", "max_body_bytes", "idle_timeout")}


def test_default_drops_the_apps_own_limits(d: str) -> None:
    assert own_limits(d) == {"read_timeout": 5, "max_body_bytes": 1000, "idle_timeout": 7}
    code, out = lychgate(
        "app", "update", "wiki", "--default", "read-timeout", "--default", "max-body", "--dir", d
    )
    assert code == 0, out
    assert own_limits(d) == {"read_timeout": None, "max_body_bytes": None, "idle_timeout": 7}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--default", "timeout"], "--default: no limit 'timeout'; one of: connect-timeout"),
        (["--default", "max-body", "--max-body", "5"], "the same limit is given a value too"),
    ],
)
def test_a_bad_default_changes_nothing(d: str, args: list[str], said: str) -> None:
    code, out = lychgate("app", "update", "wiki", *args, "--dir", d)
    assert code == 2
    assert said in " ".join(out.split())
    assert own_limits(d) == {"read_timeout": 5, "max_body_bytes": 1000, "idle_timeout": 7}
