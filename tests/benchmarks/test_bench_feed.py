"""The feed benchmark (bench/feed.py) runs on a real store and measures real messages."""

from __future__ import annotations

import pytest

from bench.feed import main, measure, table


def test_the_figures_are_measured_and_the_updates_are_the_smaller_lines() -> None:
    figures = measure(50, repeats=1)
    assert figures.users == 50
    timings = (
        figures.look_ms,
        figures.user_look_ms,
        figures.rebuild_ms,
        figures.sessions_ms,
        figures.users_ms,
        figures.snapshot_ms,
    )
    assert min(timings) > 0
    assert figures.sessions_bytes < figures.snapshot_bytes
    assert figures.users_bytes < figures.snapshot_bytes
    assert table([figures]).count("| 50 |") == 2


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--users", "0"])
    assert "must be positive" in capsys.readouterr().err
