"""The feed benchmark (bench/feed.py) runs on a real store and measures real messages."""

from __future__ import annotations

import pytest

from bench.feed import main, measure, table


def test_the_figures_are_measured_and_the_update_is_the_smaller_line() -> None:
    figures = measure(50, repeats=1)
    assert figures.users == 50
    assert min(figures.look_ms, figures.rebuild_ms, figures.update_ms, figures.snapshot_ms) > 0
    assert figures.update_bytes < figures.snapshot_bytes
    assert "| 50 |" in table([figures])


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--users", "0"])
    assert "must be positive" in capsys.readouterr().err
