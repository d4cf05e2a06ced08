"""The in-process micro-benchmark (bench/micro.py) runs and measures real answers."""

from __future__ import annotations

import pytest

from bench.micro import main, run


def test_every_handler_answers_200_and_costs_something() -> None:
    results = run(["trivial", "admission", "decided"], requests=50, repeats=1)
    assert set(results) == {"trivial", "admission", "decided"}
    assert all(us > 0 for us in results.values())


def test_unknown_handler_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["nope"])
    assert "unknown handler nope" in capsys.readouterr().err
