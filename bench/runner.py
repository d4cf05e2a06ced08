"""Run every selected scenario against every selected config, one at a time.

The small GET comes first, in ``small_get_rounds`` rounds that take every config in turn, and
each config's row is its median round (by rate): the machine's speed drifts by tens of percent
over minutes, and interleaving spreads that drift over all configs instead of the ones that
happened to run in a slow minute. The other scenarios follow, config by config.

The upstreams start once for the whole run. Each (config, scenario) pair gets a freshly started
proxy, so memory figures start from a clean process, and nothing ever runs alongside it: on two
cores a second proxy would steal the CPU being measured. A config that fails gets a row with its
error and the run goes on; a config whose tool is missing is skipped for the other scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from bench.fmt import format_number
from bench.procs import free_port, start_process, wait_ready
from bench.report import BASELINE, HOP_BASELINE, Row
from bench.scenarios.base import Measurement, RunSettings, Scenario, Upstream
from bench.targets import (
    StartTarget,
    Target,
    TargetUnavailable,
    caddy,
    nginx,
    placeholder_cookie,
    relay,
)
from bench.targets.lychgate import lychgate_config

REPO_ROOT = Path(__file__).resolve().parent.parent
# On top of the scenario's own duration: start-up, opening 10k connections, shutting down.
SCENARIO_SLACK_S = 240.0


@dataclass(frozen=True, slots=True)
class Config:
    """A proxy set-up to compare. ``start`` is None for the upstream measured directly."""

    key: str
    name: str
    tool: str
    start: StartTarget | None
    # The scenario keys it runs; None: all. The diagnostic configs only split the small GET.
    only: frozenset[str] | None = None

    def runs(self, scenario: Scenario) -> bool:
        return self.only is None or scenario.key in self.only


_SMALL_GET: Final = frozenset({"small_get"})


def all_configs(workdir: Path, cores: int) -> tuple[Config, ...]:
    """Every config, in report order; the Lychgate ones share deployments under ``workdir``."""
    lychgate_root = workdir / "lychgate"
    return (
        Config("direct", "upstream direct (no proxy)", "upstream", None),
        Config("nginx", "nginx proxy_pass", "nginx", nginx.start_proxy),
        Config("nginx-auth", BASELINE, "nginx", nginx.start_auth_request),
        Config("nginx-auth-hop", HOP_BASELINE, "nginx", nginx.start_auth_request_hop),
        Config("caddy", "Caddy reverse_proxy", "caddy", caddy.start_proxy),
        Config("caddy-auth", "Caddy + forward_auth", "caddy", caddy.start_forward_auth),
        # The gateway's architecture with nothing of the gateway: its per-request floor.
        Config("relay", "bare Python relay (no features)", "relay", relay.start_relay),
        Config(
            "relay-headers",
            "bare relay that reads each head",
            "relay",
            relay.start_reading_relay,
            only=_SMALL_GET,
        ),
        # The gateway's engine forwarding everything: the gateway minus admission.
        Config(
            "engine",
            "Lychgate engine alone (no admission)",
            "relay",
            relay.start_engine,
            only=_SMALL_GET,
        ),
        Config("lychgate-1", "Lychgate, 1 worker", "lychgate", lychgate_config(lychgate_root, 1)),
        Config(
            "lychgate-N",
            f"Lychgate, {cores} workers",
            "lychgate",
            lychgate_config(lychgate_root, cores),
        ),
    )


@dataclass(frozen=True, slots=True)
class Upstreams:
    """The running upstreams: nginx for GETs, the Python process for uploads and WebSockets."""

    http: Target
    python: Target
    ws_port: int

    def port_for(self, upstream: Upstream) -> int:
        """The port a proxy forwards to in a scenario that needs ``upstream``."""
        if upstream is Upstream.HTTP:
            return self.http.port
        if upstream is Upstream.SINK:
            return self.python.port
        return self.ws_port

    def direct(self, upstream: Upstream) -> Target:
        """The upstream itself as a target (no proxy), for reference."""
        serving = self.http if upstream is Upstream.HTTP else self.python
        return Target(
            port=self.port_for(upstream),
            cookie=placeholder_cookie(),
            measured_roots=serving.rss_roots,
        )

    async def stop(self) -> None:
        """Stop both upstreams."""
        await asyncio.gather(self.http.stop(), self.python.stop())


async def start_upstreams(workdir: Path) -> Upstreams:
    """Start the nginx upstream and the Python sink + echo process."""
    http = await nginx.start_upstream(workdir / "nginx-upstream")
    try:
        sink_port, ws_port = free_port(), free_port()
        while ws_port == sink_port:
            ws_port = free_port()
        pydir = workdir / "python-upstream"
        await asyncio.to_thread(pydir.mkdir, parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bench.upstream"]
        argv += ["--sink-port", str(sink_port), "--ws-port", str(ws_port)]
        proc = await start_process("python-upstream", argv, pydir / "out.log", cwd=REPO_ROOT)
        python = Target(port=sink_port, cookie="", processes=(proc,))
        try:
            await wait_ready(proc, sink_port)
            await wait_ready(proc, ws_port)  # answers plain HTTP with 426 Upgrade Required
        except BaseException:
            await python.stop()
            raise
    except BaseException:
        await http.stop()
        raise
    return Upstreams(http=http, python=python, ws_port=ws_port)


def summary(m: Measurement) -> str:
    """One progress line's worth of a measurement."""
    parts = []
    if m.rate is not None:
        parts.append(f"rate {format_number(m.rate)}")
    if m.mib_per_s is not None:
        parts.append(f"{format_number(m.mib_per_s)} MiB/s")
    if m.p99_ms is not None:
        parts.append(f"p99 {m.p99_ms:.2f} ms")
    if m.rss_growth_kib is not None:
        parts.append(f"RSS +{m.rss_growth_kib / 1024:.1f} MiB")
    return ", ".join(parts + list(m.notes))


def budget(settings: RunSettings) -> float:
    """Seconds one (config, scenario) pair may take before it is abandoned."""
    return settings.duration_s + SCENARIO_SLACK_S


async def run_one(
    config: Config,
    scenario: Scenario,
    upstreams: Upstreams,
    workdir: Path,
    settings: RunSettings,
) -> Measurement:
    """Start the config's proxy, run the scenario through it, stop the proxy."""
    upstream_port = upstreams.port_for(scenario.upstream)
    async with asyncio.timeout(budget(settings)):
        if config.start is None:
            return await scenario.run(upstreams.direct(scenario.upstream), settings)
        target = await config.start(workdir / config.key / scenario.key, upstream_port)
        try:
            return await scenario.run(target, settings)
        finally:
            await target.stop()


class _Progress:
    """The ``[n/total] config / scenario: result`` lines on stderr."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def report(self, config: Config, scenario: Scenario, outcome: Measurement | str) -> None:
        self.done += 1
        text = outcome if isinstance(outcome, str) else summary(outcome)
        print(f"[{self.done}/{self.total}] {config.name} / {scenario.key}: {text}", file=sys.stderr)


def median_round(rounds: Sequence[Measurement | str]) -> Measurement | str:
    """The round with the median rate, noting how many there were and their range; with no
    measured round, the first error."""
    measured = sorted(
        (r for r in rounds if isinstance(r, Measurement) and r.rate is not None),
        key=lambda m: m.rate or 0.0,
    )
    if not measured:
        return rounds[0]
    if len(rounds) == 1:
        return measured[0]
    middle = measured[(len(measured) - 1) // 2]
    low, high = format_number(measured[0].rate or 0), format_number(measured[-1].rate or 0)
    note = f"median of {len(measured)} rounds ({low}-{high})"
    if len(measured) < len(rounds):
        note += f"; {len(rounds) - len(measured)} failed"
    return replace(middle, notes=(*middle.notes, note))


async def _measure(
    config: Config, scenario: Scenario, upstreams: Upstreams, workdir: Path, settings: RunSettings
) -> Measurement | str:
    try:
        return await run_one(config, scenario, upstreams, workdir, settings)
    except TargetUnavailable as exc:
        raise _Unavailable(f"{config.tool} target unavailable: {exc}") from exc
    except TimeoutError:
        return f"error: no result within {budget(settings):.0f} s"
    except Exception as exc:  # one config failing must not end the run
        return f"error: {type(exc).__name__}: {exc}".strip()


class _Unavailable(Exception):
    """A config's tool is missing: its other scenarios are skipped with this message."""


async def run_all(
    configs: Sequence[Config],
    scenarios: Sequence[Scenario],
    settings: RunSettings,
    workdir: Path,
    start: Callable[[Path], Awaitable[Upstreams]] = start_upstreams,
) -> dict[str, list[Row]]:
    """Run everything one after the other; rows per scenario key, in config order.

    ``start`` starts the upstreams (tests pass upstreams that are already there).
    """
    rounds = max(1, settings.small_get_rounds)
    runs = [(c, s) for c in configs for s in scenarios if c.runs(s)]
    progress = _Progress(sum(rounds if s.key == "small_get" else 1 for _, s in runs))
    outcomes: dict[tuple[str, str], list[Measurement | str]] = {}
    unavailable: dict[str, str] = {}  # config key -> why its tool cannot run

    async def measure(config: Config, scenario: Scenario) -> None:
        outcome: Measurement | str
        if config.key in unavailable:
            outcome = unavailable[config.key]
        else:
            try:
                outcome = await _measure(config, scenario, upstreams, workdir, settings)
            except _Unavailable as exc:
                outcome = unavailable[config.key] = str(exc)
        progress.report(config, scenario, outcome)
        outcomes.setdefault((config.key, scenario.key), []).append(outcome)

    upstreams = await start(workdir / "upstreams")
    try:
        first = [(c, s) for c, s in runs if s.key == "small_get"]
        for _ in range(rounds if first else 0):
            for config, scenario in first:
                await measure(config, scenario)
        for config, scenario in runs:
            if scenario.key != "small_get":
                await measure(config, scenario)
    finally:
        await upstreams.stop()
    rows: dict[str, list[Row]] = {s.key: [] for s in scenarios}
    for config, scenario in runs:
        rows[scenario.key].append(
            Row(config.name, median_round(outcomes[config.key, scenario.key]))
        )
    return rows


def install_sigterm_cancel() -> None:
    """Turn SIGTERM into cancellation of the running task, so ``finally`` blocks stop servers."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)


def cores() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))
