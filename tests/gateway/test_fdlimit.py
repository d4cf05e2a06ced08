"""The gateway raises its open-file limit (lychgate.gateway.http.fdlimit), in a child process
so that the test runner's own limit is left alone."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

SCRIPT = """
import logging, resource, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
from lychgate.gateway.http.fdlimit import raise_open_file_limit
print("limit", raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _run(soft: int, hard: int) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(soft), str(hard)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def _hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    hard = min(_hard(), 16384)
    if hard <= 1024:
        pytest.skip("the hard limit leaves nothing to raise")
    out = _run(256, hard)
    assert f"limit {hard} {hard}" in out
    assert f"raised the open-file limit from 256 to {hard}" in out


def test_a_low_hard_limit_is_reported() -> None:
    out = _run(512, 1024)
    assert "limit 1024 1024" in out
    assert "WARNING only 1024 open files allowed" in out
    assert "LimitNOFILE=" in out


def test_nothing_to_do_is_quiet() -> None:
    hard = min(_hard(), 16384)
    if hard < 4096:
        pytest.skip("the hard limit is below the warning threshold")
    assert _run(hard, hard).strip() == f"limit {hard} {hard}"
