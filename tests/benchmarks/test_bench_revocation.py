"""The revocation benchmark's report (bench/revocation.py) and its place in ``python -m bench``."""

from __future__ import annotations

import pytest

from bench.__main__ import REVOCATION, split_revocation
from bench.fmt import DASH
from bench.revocation import (
    DISABLE,
    LOGOUT,
    SESSION_END,
    Sample,
    main,
    section,
    summary_row,
    table,
)


def test_a_row_gives_median_p95_max_and_how_many_kept_the_promise() -> None:
    values = [n / 100 for n in range(1, 21)]  # 10 ms .. 200 ms
    assert summary_row(LOGOUT, "x", [*values, 1.5]) == [
        LOGOUT,
        "x",
        "21",
        "110 ms",
        "200 ms",
        "1500 ms",
        "20/21",
    ]


def test_missed_samples_are_counted_apart_never_as_figures() -> None:
    row = summary_row(DISABLE, "x", [0.4, None, 0.5])
    assert row[2:] == ["2 (1 missed)", "450 ms", "500 ms", "500 ms", "2/3"]
    assert summary_row(DISABLE, "x", [None]) == [DISABLE, "x", "0 (1 missed)", *[DASH] * 4]


def test_the_table_has_both_effects_per_kind_and_the_socket_alone_for_session_ends() -> None:
    samples = [
        Sample(SESSION_END, 0.3, None),
        Sample(LOGOUT, 0.01, 0.02),
        Sample(DISABLE, 0.45, 0.46),
        Sample(LOGOUT, 0.03, 0.04),
    ]
    lines = table(samples).splitlines()
    assert lines[0] == "| revoked by | until | samples | median | p95 | max | within 1 s |"
    assert [line.split(" | ")[:3] for line in lines[2:]] == [
        ["| logout", "WebSocket closed", "2"],
        ["| logout", "cookie refused (401)", "2"],
        ["| user disable", "WebSocket closed", "1"],
        ["| user disable", "cookie refused (401)", "1"],
        ["| session end", "WebSocket closed", "1"],
    ]
    assert lines[2].endswith("| 20 ms | 30 ms | 30 ms | 2/2 |")
    assert section("TABLE", 7).startswith("### Revocation latency (7 samples per kind")
    assert section("TABLE", 7).endswith("\n\nTABLE\n")


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        ([], ([], True)),  # everything
        ([REVOCATION], (None, True)),  # no scenario at all
        (["small_get"], (["small_get"], False)),
        (["small_get", REVOCATION], (["small_get"], True)),
    ],
)
def test_only_picks_the_revocation_section_apart_from_the_scenarios(
    only: list[str], expected: tuple[list[str] | None, bool]
) -> None:
    assert split_revocation(only) == expected


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--samples", "0"])
    assert "--samples must be positive" in capsys.readouterr().err
