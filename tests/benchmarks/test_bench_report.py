"""Report formatting and ratios (bench/fmt.py, bench/report.py)."""

from __future__ import annotations

import pytest

from bench.fmt import DASH, TIMES, format_kib, format_ms, format_number, format_ratio
from bench.report import BASELINE, HOP_BASELINE, Row, markdown_table, scenario_table
from bench.scenarios.base import Column, Measurement, RunSettings, Scenario, Upstream, percentile
from bench.targets import Target


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [
        (24_000.0, 24_000.0, f"1.00{TIMES}"),
        (6_000.0, 24_000.0, f"0.25{TIMES}"),
        (40_000.0, 24_000.0, f"1.67{TIMES}"),
        (None, 24_000.0, DASH),
        (1.0, None, DASH),
        (1.0, 0.0, DASH),
    ],
)
def test_format_ratio(value: float | None, baseline: float | None, expected: str) -> None:
    assert format_ratio(value, baseline) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(133_456.0, "133k"), (40_123.4, "40.1k"), (512.25, "512"), (12.34, "12.3"), (3.14159, "3.14")],
)
def test_format_number(value: float, expected: str) -> None:
    assert format_number(value) == expected


def test_format_ms_and_kib() -> None:
    assert format_ms(0.805) == "0.805 ms"
    assert format_ms(12.345) == "12.35 ms"
    assert format_ms(1200.0) == "1200 ms"
    assert format_ms(None) == DASH
    assert format_kib(512) == "512 KiB"
    assert format_kib(0.64) == "0.6 KiB"
    assert format_kib(105 * 1024) == "105.0 MiB"


def test_markdown_table_escapes_pipes() -> None:
    text = markdown_table(["a", "b"], [["x|y", "z"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | z |"]


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


async def _never(target: Target, settings: RunSettings) -> Measurement:
    raise AssertionError("not run in report tests")


SCENARIO = Scenario(
    key="t",
    title="Test with {small_connections} connections",
    upstream=Upstream.HTTP,
    run=_never,
    columns=(Column("req/s", lambda m: format_number(m.rate)),),
    ratio_of=lambda m: m.rate,
    ratio_label="req/s",
)


def test_heading_fills_in_the_settings() -> None:
    assert SCENARIO.heading(RunSettings(small_connections=7)) == "Test with 7 connections"


def test_table_gives_each_config_its_ratio_to_the_baseline() -> None:
    rows = [
        Row("nginx proxy_pass", Measurement(rate=40_000.0)),
        Row(BASELINE, Measurement(rate=20_000.0, notes=("3 non-2xx of 100",))),
        Row("Lychgate, 1 worker", "lychgate target unavailable: no such command"),
    ]
    lines = scenario_table(SCENARIO, "Title", rows).splitlines()
    assert lines[0] == "### Title"
    assert lines[2] == f"| config | req/s | req/s vs {BASELINE} | notes |"
    assert lines[4] == f"| nginx proxy_pass | 40.0k | 2.00{TIMES} |  |"
    assert lines[5] == f"| {BASELINE} | 20.0k | 1.00{TIMES} | 3 non-2xx of 100 |"
    assert lines[6] == (
        f"| Lychgate, 1 worker | {DASH} | {DASH} | lychgate target unavailable: no such command |"
    )


def test_without_a_baseline_row_ratios_are_dashes() -> None:
    rows = [Row("nginx proxy_pass", Measurement(rate=40_000.0)), Row(BASELINE, "error: boom")]
    lines = scenario_table(SCENARIO, "T", rows).splitlines()
    assert lines[4] == f"| nginx proxy_pass | 40.0k | {DASH} |  |"


def test_the_hop_row_gets_a_ratio_column_of_its_own_when_it_ran() -> None:
    rows = [
        Row(BASELINE, Measurement(rate=40_000.0)),
        Row(HOP_BASELINE, Measurement(rate=20_000.0)),
        Row("Lychgate, 1 worker", Measurement(rate=16_000.0)),
        Row("Caddy + forward_auth", "error: boom"),
    ]
    lines = scenario_table(SCENARIO, "T", rows).splitlines()
    assert lines[2] == f"| config | req/s | req/s vs {BASELINE} | req/s vs {HOP_BASELINE} | notes |"
    assert lines[6] == f"| Lychgate, 1 worker | 16.0k | 0.40{TIMES} | 0.80{TIMES} |  |"
    assert lines[7] == f"| Caddy + forward_auth | {DASH} | {DASH} | {DASH} | error: boom |"
