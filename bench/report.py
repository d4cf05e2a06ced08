"""Markdown tables of the results, with each config's ratio to the baseline config.

Pure functions only: the runner hands in the numbers, this module turns them into text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.fmt import DASH, format_ratio
from bench.scenarios.base import Measurement, Scenario

BASELINE = "nginx + auth_request"
# The same with its auth subrequest over a pooled loopback connection, as to a real auth
# service: DESIGN.md's calibration of nginx + auth_request (0.6x proxy_pass). Given a column
# of its own beside BASELINE's whenever the run includes it (README, "Which nginx").
HOP_BASELINE = "nginx + auth_request over a loopback hop"


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
    scenario: Scenario,
    heading: str,
    rows: Sequence[Row],
    baselines: Sequence[str] = (BASELINE, HOP_BASELINE),
) -> str:
    """The section for one scenario: a heading and a table with a ratio column for the first
    of ``baselines``, and one for each other that has a row here."""
    present = {row.config for row in rows}
    used = [b for i, b in enumerate(baselines) if i == 0 or b in present]
    base_values = [_base_value(scenario, rows, b) for b in used]
    headers = [
        "config",
        *(c.header for c in scenario.columns),
        *(f"{scenario.ratio_label} vs {b}" for b in used),
        "notes",
    ]
    body: list[list[str]] = []
    for row in rows:
        if isinstance(row.outcome, str):
            blanks = [DASH] * (len(scenario.columns) + len(used))
            body.append([row.config, *blanks, row.outcome])
            continue
        m = row.outcome
        cells = [c.cell(m) for c in scenario.columns]
        ratios = [format_ratio(scenario.ratio_of(m), base) for base in base_values]
        body.append([row.config, *cells, *ratios, "; ".join(m.notes)])
    return f"### {heading}\n\n{markdown_table(headers, body)}\n"


def _base_value(scenario: Scenario, rows: Sequence[Row], baseline: str) -> float | None:
    for row in rows:
        if row.config == baseline and isinstance(row.outcome, Measurement):
            return scenario.ratio_of(row.outcome)
    return None
