"""GET throughput with wrk: a small fixed body, and a 1 MiB body."""

from __future__ import annotations

from bench.fmt import format_kib, format_ms, format_number
from bench.procs import LOOPBACK, RssSampler
from bench.scenarios.base import MIB, Column, Measurement, RunSettings, Scenario, Upstream
from bench.targets import Target
from bench.wrk import WrkResult, run_wrk, wrk_argv


def wrk_notes(result: WrkResult) -> tuple[str, ...]:
    """Warnings worth a note: any non-2xx answer or socket error makes the rate suspect."""
    notes = []
    if result.non_2xx:
        notes.append(f"{result.non_2xx} non-2xx of {result.requests}")
    if result.socket_errors:
        notes.append(f"{result.socket_errors} socket errors")
    if result.timeouts:
        notes.append(f"{result.timeouts} timeouts")
    return tuple(notes)


async def _wrk_get(target: Target, path: str, connections: int, duration_s: float) -> Measurement:
    url = f"http://{LOOPBACK}:{target.port}{path}"
    argv = wrk_argv(url, duration_s=duration_s, connections=connections, headers=target.headers)
    with RssSampler(target.rss_roots, interval=0.1) as rss:
        result = await run_wrk(argv, duration_s)
    return Measurement(
        rate=result.requests_per_s,
        mib_per_s=result.transfer_per_s / MIB,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        rss_growth_kib=rss.growth_kib,
        notes=wrk_notes(result),
    )


async def run_small_get(target: Target, settings: RunSettings) -> Measurement:
    """wrk -t1 -c50 on /small with the cookie."""
    return await _wrk_get(target, "/small", settings.small_connections, settings.duration_s)


async def run_large_get(target: Target, settings: RunSettings) -> Measurement:
    """wrk -t1 -c10 on /1mb with the cookie."""
    return await _wrk_get(target, "/1mb", settings.large_connections, settings.duration_s)


def _rate(m: Measurement) -> float | None:
    return m.rate


SMALL_GET = Scenario(
    key="small_get",
    title="Small GET (wrk -t1 -c{small_connections}, {duration_s:g} s, keep-alive, cookie sent)",
    upstream=Upstream.HTTP,
    run=run_small_get,
    columns=(
        Column("req/s", lambda m: format_number(m.rate)),
        Column("p50", lambda m: format_ms(m.p50_ms)),
        Column("p99", lambda m: format_ms(m.p99_ms)),
        Column("RSS growth", lambda m: format_kib(m.rss_growth_kib)),
    ),
    ratio_of=_rate,
    ratio_label="req/s",
)

LARGE_GET = Scenario(
    key="large_get",
    title="1 MiB response (wrk -t1 -c{large_connections}, {duration_s:g} s)",
    upstream=Upstream.HTTP,
    run=run_large_get,
    columns=(
        Column("req/s", lambda m: format_number(m.rate)),
        Column("MiB/s", lambda m: format_number(m.mib_per_s)),
        Column("p50", lambda m: format_ms(m.p50_ms)),
        Column("p99", lambda m: format_ms(m.p99_ms)),
        Column("RSS growth", lambda m: format_kib(m.rss_growth_kib)),
    ),
    ratio_of=_rate,
    ratio_label="req/s",
)
