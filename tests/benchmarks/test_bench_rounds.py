"""The bench's small-GET rounds: every config in turn, each row its median round
(bench.runner.run_all, median_round), with upstreams and proxies that are plain objects."""

from __future__ import annotations

from pathlib import Path

from bench.runner import Config, Upstreams, median_round, run_all
from bench.scenarios.base import Measurement, RunSettings, Scenario, Upstream
from bench.targets import Target, TargetUnavailable


def _scenario(key: str, order: list[tuple[int, str]], rates: dict[int, list[float]]) -> Scenario:
    async def run(target: Target, settings: RunSettings) -> Measurement:
        order.append((target.port, key))
        return Measurement(rate=rates[target.port].pop(0))

    return Scenario(key, key, Upstream.HTTP, run, (), lambda m: m.rate, "rate")


def _config(key: str, port: int) -> Config:
    async def start(workdir: Path, upstream_port: int) -> Target:
        if port == 0:
            raise TargetUnavailable("no such tool")
        return Target(port=port, cookie="")

    return Config(key, key.upper(), key, start)


async def _upstreams(workdir: Path) -> Upstreams:
    return Upstreams(http=Target(port=1, cookie=""), python=Target(port=2, cookie=""), ws_port=3)


async def test_small_get_rounds_take_the_configs_in_turn_and_keep_the_median(
    tmp_path: Path,
) -> None:
    order: list[tuple[int, str]] = []
    rates = {10: [5.0, 9.0, 7.0, 100.0], 20: [1.0, 2.0, 3.0, 200.0]}
    scenarios = [_scenario("small_get", order, rates), _scenario("upload", order, rates)]
    configs = [_config("a", 10), _config("b", 20), _config("gone", 0)]
    rows = await run_all(
        configs, scenarios, RunSettings(small_get_rounds=3), tmp_path, start=_upstreams
    )
    small = [(10, "small_get"), (20, "small_get")]
    assert order == small * 3 + [(10, "upload"), (20, "upload")]
    a, b, gone = rows["small_get"]
    assert isinstance(a.outcome, Measurement)
    assert a.outcome.rate == 7.0
    assert a.outcome.notes == ("median of 3 rounds (5.00-9.00)",)
    assert isinstance(b.outcome, Measurement)
    assert b.outcome.rate == 2.0
    assert gone.outcome == "gone target unavailable: no such tool"
    assert [row.outcome for row in rows["upload"]] == [
        Measurement(rate=100.0),
        Measurement(rate=200.0),
        "gone target unavailable: no such tool",  # not tried again
    ]


def test_one_round_is_reported_as_measured() -> None:
    assert median_round([Measurement(rate=5.0)]) == Measurement(rate=5.0)


def test_failed_rounds_are_counted_and_all_failed_gives_the_error() -> None:
    picked = median_round(["error: boom", Measurement(rate=4.0), Measurement(rate=6.0)])
    assert isinstance(picked, Measurement)
    assert picked.rate == 4.0
    assert picked.notes == ("median of 2 rounds (4.00-6.00); 1 failed",)
    assert median_round(["error: one", "error: two"]) == "error: one"
