"""Number formatting for the report tables (pure functions)."""

from __future__ import annotations

DASH = "\u2013"  # en dash: a cell with no value
TIMES = "\u00d7"


def format_number(value: float | None) -> str:
    """Readable magnitude: 40123.4 -> "40.1k", 512.25 -> "512", 3.14159 -> "3.14"."""
    if value is None:
        return DASH
    if abs(value) >= 100_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_ms(value: float | None) -> str:
    """Milliseconds with a precision that suits the magnitude."""
    if value is None:
        return DASH
    if value < 1:
        return f"{value:.3f} ms"
    if value < 100:
        return f"{value:.2f} ms"
    return f"{value:.0f} ms"


def format_kib(value: float | None) -> str:
    """A memory size given in KiB, shown in KiB or MiB."""
    if value is None:
        return DASH
    if abs(value) >= 1024:
        return f"{value / 1024:.1f} MiB"
    if abs(value) < 10:
        return f"{value:.1f} KiB"
    return f"{value:.0f} KiB"


def format_ratio(value: float | None, baseline: float | None) -> str:
    """``value / baseline`` with two decimals and a multiplication sign; a dash when either is
    missing or the baseline is 0."""
    if value is None or baseline is None or baseline == 0:
        return DASH
    return f"{value / baseline:.2f}{TIMES}"
