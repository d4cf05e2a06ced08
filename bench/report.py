"""Markdown tables of the results, with each config's ratio to the baseline config.

Pure functions only: the runner hands in the numbers, this module turns them into text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.fmt import DASH, format_ratio
from bench.scenarios.base import Measurement, Scenario

BASELINE = "nginx + auth_request"


@dataclass(frozen=True, slots=True)
class Row:
    """One config's outcome in one scenario: a measurement, or the error that stopped it."""

    config: str
    outcome: Measurement | str


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; pipes in cells are escaped."""
    lines = [
        "| " + " | ".join(_escape(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scenario_table(
    scenario: Scenario, heading: str, rows: Sequence[Row], baseline: str = BASELINE
) -> str:
    """The section for one scenario: a heading and a table with a ratio to ``baseline``."""
    base_value: float | None = None
    for row in rows:
        if row.config == baseline and isinstance(row.outcome, Measurement):
            base_value = scenario.ratio_of(row.outcome)
    headers = [
        "config",
        *(c.header for c in scenario.columns),
        f"{scenario.ratio_label} vs {baseline}",
        "notes",
    ]
    body: list[list[str]] = []
    for row in rows:
        if isinstance(row.outcome, str):
            blanks = [DASH] * (len(scenario.columns) + 1)
            body.append([row.config, *blanks, row.outcome])
            continue
        m = row.outcome
        cells = [c.cell(m) for c in scenario.columns]
        ratio = format_ratio(scenario.ratio_of(m), base_value)
        body.append([row.config, *cells, ratio, "; ".join(m.notes)])
    return f"### {heading}\n\n{markdown_table(headers, body)}\n"
