"""The shapes every scenario shares: its settings, its measurement and its table columns."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.targets import Target

MIB = 1 << 20


class Upstream(enum.Enum):
    """Which upstream a scenario's proxy forwards to."""

    HTTP = "http"  # nginx: /small, /1mb and /100mb
    SINK = "sink"  # Python: reads and counts request bodies
    WS = "ws"  # Python: WebSocket echo


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Sizes and durations of one run; ``--quick`` and ``--duration`` change them."""

    duration_s: float = 8.0
    small_connections: int = 50
    large_connections: int = 10
    upload_bytes: int = 100 * MIB
    upload_repeats: int = 3
    idle_connections: int = 10_000
    idle_hold_s: float = 3.0
    ws_connections: int = 1_000
    ws_payload_bytes: int = 64
    # The small GET, where the ratios are read, runs this many rounds across all configs in
    # turn (A B C, A B C, ...), so that a machine that slows down for a minute weighs on every
    # config alike; each row is its config's median round.
    small_get_rounds: int = 3


@dataclass(frozen=True, slots=True)
class Measurement:
    """What a scenario measured on one config. Unset fields print as a dash."""

    rate: float | None = None  # req/s, round trips/s, or connections held
    mib_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    seconds: float | None = None
    rss_growth_kib: int | None = None
    per_conn_kib: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Column:
    """One table column: header and how to render a measurement's cell."""

    header: str
    cell: Callable[[Measurement], str]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A load pattern, how to run it against a target, and how to report it."""

    key: str
    title: str  # a format string over RunSettings' fields, e.g. "{ws_connections:,} WebSockets"
    upstream: Upstream
    run: Callable[[Target, RunSettings], Awaitable[Measurement]]
    columns: tuple[Column, ...]
    # The figure compared with the baseline config, and its name in the ratio column.
    ratio_of: Callable[[Measurement], float | None]
    ratio_label: str

    def heading(self, settings: RunSettings) -> str:
        """The title with this run's sizes filled in."""
        fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
        fields["upload_mib"] = settings.upload_bytes // MIB
        return self.title.format_map(fields)


def percentile(ordered: Sequence[int] | Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, by nearest rank."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])
