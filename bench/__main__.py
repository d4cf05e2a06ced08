"""``python -m bench``: install the tools, run the benchmarks, print and save the tables.

Examples::

    python -m bench                      # everything, ~10 minutes
    python -m bench --quick              # short durations, fewer connections, one round
    python -m bench --only small_get --configs nginx-auth,lychgate-1 --duration 5
    python -m bench --only small_get --rounds 5   # the ratios, with more rounds
    python -m bench --only revocation    # revocation latency alone (bench/revocation.py)

The small GET runs in rounds (3 by default) that take every config in turn; each row is the
config's median round, with the range in its notes. The report ends with the revocation
latency of ``lychgate serve`` (``python -m bench.revocation``, about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from bench import revocation
from bench.install import ensure_installed, tool_versions
from bench.procs import raise_nofile
from bench.report import BASELINE, HOP_BASELINE, Row, scenario_table
from bench.runner import REPO_ROOT, Config, all_configs, cores, install_sigterm_cancel, run_all
from bench.scenarios import SCENARIOS
from bench.scenarios.base import MIB, RunSettings, Scenario

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "latest.md"
QUICK = RunSettings(
    duration_s=3.0,
    upload_repeats=1,
    idle_connections=2_000,
    idle_hold_s=1.0,
    ws_connections=200,
    small_get_rounds=1,
)
# Not a scenario of every config: one section of its own, after the scenarios' tables.
REVOCATION = "revocation"
REVOCATION_SAMPLES = 20
QUICK_REVOCATION_SAMPLES = 5


def _names(values: Sequence[str] | None) -> list[str]:
    """``--only a,b --only c`` -> [a, b, c]."""
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short run: 3 s tests, fewer conns")
    p.add_argument(
        "--only",
        action="append",
        metavar="SCENARIOS",
        help=f"comma-separated, from: {', '.join(s.key for s in SCENARIOS)}, {REVOCATION}",
    )
    p.add_argument(
        "--configs",
        action="append",
        metavar="CONFIGS",
        help="comma-separated config keys (direct, nginx, nginx-auth, nginx-auth-hop, caddy, "
        "caddy-auth, relay, relay-headers, engine, lychgate-1, lychgate-N)",
    )
    p.add_argument("--duration", type=float, help="seconds per timed test (wrk, WebSocket)")
    p.add_argument("--idle-connections", type=int)
    p.add_argument("--ws-connections", type=int)
    p.add_argument(
        "--rounds", type=int, help="small-GET rounds across all configs in turn (default 3)"
    )
    p.add_argument(
        "--upload-mb", type=int, help="upload size in MiB (the download is always 100 MiB)"
    )
    p.add_argument("--no-install", action="store_true", help="do not apt-get install tools")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> RunSettings:
    """RunSettings from the defaults or --quick, with explicit flags on top."""
    s = QUICK if args.quick else RunSettings()
    if args.duration is not None:
        s = dataclasses.replace(s, duration_s=max(1.0, args.duration))
    if args.idle_connections is not None:
        s = dataclasses.replace(s, idle_connections=max(1, args.idle_connections))
    if args.ws_connections is not None:
        s = dataclasses.replace(s, ws_connections=max(1, args.ws_connections))
    if args.rounds is not None:
        s = dataclasses.replace(s, small_get_rounds=max(1, args.rounds))
    if args.upload_mb is not None:
        s = dataclasses.replace(s, upload_bytes=max(1, args.upload_mb) * MIB)
    return s


def split_revocation(keys: list[str]) -> tuple[list[str] | None, bool]:
    """``--only`` without the revocation section: the scenario keys (None when it named
    nothing but the revocation, so no scenario runs) and whether that section runs."""
    scenario_keys = [k for k in keys if k != REVOCATION]
    if keys and not scenario_keys:
        return None, True
    return scenario_keys, not keys or REVOCATION in keys


def select(
    scenario_keys: list[str], config_keys: list[str], configs: Sequence[Config]
) -> tuple[list[Scenario], list[Config]]:
    """The scenarios and configs named on the command line (all when none are named)."""
    by_key = {s.key: s for s in SCENARIOS}
    if unknown := [k for k in scenario_keys if k not in by_key]:
        raise SystemExit(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(by_key)}")
    known = {c.key: c for c in configs}
    if unknown := [k for k in config_keys if k not in known]:
        raise SystemExit(f"unknown config {', '.join(unknown)}; choose from {', '.join(known)}")
    scenarios = [s for s in SCENARIOS if not scenario_keys or s.key in scenario_keys]
    chosen = [c for c in configs if not config_keys or c.key in config_keys]
    return scenarios, chosen


def render(
    scenarios: Sequence[Scenario],
    settings: RunSettings,
    rows: dict[str, list[Row]],
    header: str,
    extra: Sequence[str] = (),
) -> str:
    """The whole Markdown report: the scenarios' tables, then the ``extra`` sections."""
    tables = [scenario_table(s, s.heading(settings), rows[s.key]) for s in scenarios]
    return header + "\n" + "\n".join([*tables, *extra])


def report_header(versions: dict[str, str], n: int, took_s: float) -> str:
    """Title and context lines of the report."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    tools = ", ".join(f"{k} {v}" for k, v in versions.items())
    return (
        f"## Lychgate benchmark, {stamp}\n\n"
        f"{n} cores, loopback only; {tools}; the whole run took {took_s:.0f} s. One sample per "
        "cell: on a shared two-core machine, expect a few tens of percent between runs.\n\n"
        "Each proxy gets one worker (nginx `worker_processes 1`, Caddy `GOMAXPROCS=1`) except "
        f"Lychgate with {n} workers, and is started afresh for each scenario. Ratios divide each "
        f"config's figure by {BASELINE}'s, and, when the run includes it, in a second column by "
        f"{HOP_BASELINE}'s (its auth "
        "subrequest crosses a pooled connection, as to a real auth service: DESIGN.md's "
        "calibration); for RSS growth lower is better. RSS growth is the peak "
        "of VmRSS summed over the proxy's processes, minus its value before the load.\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    args = parse_args(argv)
    settings = settings_from(args)
    started = time.monotonic()
    if not args.no_install:
        try:
            installed = ensure_installed()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"bench: cannot install the tools: {exc}", file=sys.stderr)
            return 1
        if installed:
            print(f"installed: {', '.join(installed)}", file=sys.stderr)
    nofile = raise_nofile()
    print(f"open-file limit: {nofile}", file=sys.stderr)
    n = cores()
    workdir = Path(tempfile.mkdtemp(prefix="lychgate-bench-"))
    try:
        scenario_keys, with_revocation = split_revocation(_names(args.only))
        scenarios, configs = select(
            scenario_keys or [], _names(args.configs), all_configs(workdir, n)
        )
        if scenario_keys is None:
            scenarios = []
        samples = QUICK_REVOCATION_SAMPLES if args.quick else REVOCATION_SAMPLES

        async def go() -> tuple[dict[str, list[Row]], list[str]]:
            install_sigterm_cancel()
            rows = await run_all(configs, scenarios, settings, workdir) if scenarios else {}
            extra = []
            if with_revocation:  # alone on the machine, like every config
                extra.append(await revocation.run_section(workdir / REVOCATION, samples))
            return rows, extra

        rows, extra = uvloop.run(go())
    except Exception as exc:  # the upstreams did not start: nothing can be measured
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):  # SIGINT, or SIGTERM (see runner)
        print("bench interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_workdir:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    header = report_header(tool_versions(), n, time.monotonic() - started)
    text = render(scenarios, settings, rows, header, extra)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
