"""Reading the Lychgate CLI's output (bench/targets/lychgate.py)."""

from __future__ import annotations

import pytest

from bench.targets import TargetUnavailable
from bench.targets.lychgate import _last_line, parse_cookie


def test_cookie_is_the_name_value_line_whatever_surrounds_it() -> None:
    out = "lychgate=eyJ.eyJ.sig\nsession ses_1, expires 2026-11-29 14:18:22 UTC\n"
    assert parse_cookie(out) == "lychgate=eyJ.eyJ.sig"
    assert parse_cookie("Cookie: __Host-lychgate=a.b.c") == "__Host-lychgate=a.b.c"


@pytest.mark.parametrize("out", ["", "no token for you", "lychgate=; Path=/"])
def test_no_cookie_is_unavailable(out: str) -> None:
    with pytest.raises(TargetUnavailable):
        parse_cookie(out)


def test_reason_is_taken_from_inside_an_error_panel() -> None:
    panel = (
        "Usage: lychgate gateway [OPTIONS]\n"
        "\u256d\u2500 Error \u2500\u2500\u2500\u256e\n"
        "\u2502 No such option: --listen      \u2502\n"
        "\u2570\u2500\u2500\u2500\u2500\u2500\u2500\u256f\n"
    )
    assert _last_line(panel) == "No such option: --listen"
    assert _last_line("ModuleNotFoundError: x\n\n") == "ModuleNotFoundError: x"
