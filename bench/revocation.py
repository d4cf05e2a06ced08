"""``python -m bench.revocation``: how soon a revoked session is refused and its WebSockets close.

The README promises that a session ended by a logout, by ``lychgate user disable`` or by
reaching its end is refused by the gateway, and its WebSockets closed, within a second. The
tests check that it happens; this measures how soon, on a real ``lychgate serve`` (authz and
one gateway worker) in a temporary deployment, with a WebSocket echo app behind it:

* **logout**: a session minted with ``lychgate token mint``, a WebSocket opened through the
  gateway with its cookie, then ``/.lychgate/logout`` with that cookie. Timed from sending the
  logout until (a) the WebSocket closes and (b) a request with the cookie gets 401.
* **user disable**: the same with a throwaway user of its own per sample, cut off by
  ``lychgate user disable``; timed from the start of the command (run in this process, so
  without Python's start-up), which is when an operator's revocation begins.
* **session end**: sessions minted with ``--ttl``; timed from the session's end until its
  WebSocket closes (the cookie itself expires with the session: no feed is involved).

The CLI runs in this process (``typer``'s runner, in a thread), so a sample costs what the
command does, not the second an interpreter takes to start. Each sample must finish within
``HANG_S``; one that does not is counted as missed, never as a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from typer.testing import CliRunner
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from bench.fmt import DASH
from bench.procs import LOOPBACK, Proc, free_port, start_process, stop_process
from bench.report import markdown_table
from bench.scenarios.base import percentile
from bench.targets.lychgate import lychgate_bin, parse_cookie, wait_admitted
from lychgate.cli.main import app as cli_app

LOGOUT = "logout"
DISABLE = "user disable"
SESSION_END = "session end"
KINDS = (LOGOUT, DISABLE, SESSION_END)
CLOSED = "WebSocket closed"
REFUSED = "cookie refused (401)"
HANG_S = 10.0  # a sample not done by then is missed
POLL_S = 0.01  # between two requests with the revoked cookie
SESSION_TTL_S = 3  # the session-end samples: long enough to open their WebSocket first
READY_S = 30.0
APP = "chat"
USER_EMAIL = "bench@bench.test"
PROMISE_S = 1.0  # the README's "within a second"


@dataclass(frozen=True, slots=True)
class Sample:
    """One revocation: what revoked the session, and the seconds until each effect (None:
    not measured for this kind, or not seen within ``HANG_S``)."""

    kind: str
    closed_s: float | None
    refused_s: float | None


# --- the report (pure) ---------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def summary_row(kind: str, effect: str, values: Sequence[float | None]) -> list[str]:
    """``[kind, effect, samples, median, p95, max, within 1 s]``; samples missed (None) are
    counted apart, and a kind with no figure gets dashes."""
    seen = sorted(v for v in values if v is not None)
    missed = len(values) - len(seen)
    count = f"{len(seen)}" + (f" ({missed} missed)" if missed else "")
    if not seen:
        return [kind, effect, count, DASH, DASH, DASH, DASH]
    within = sum(1 for v in seen if v <= PROMISE_S)
    return [
        kind,
        effect,
        count,
        _ms(statistics.median(seen)),
        _ms(percentile(seen, 95)),
        _ms(seen[-1]),
        f"{within}/{len(values)}",
    ]


def table(samples: Sequence[Sample]) -> str:
    """The Markdown table: one row per kind and effect measured, in ``KINDS`` order."""
    rows: list[list[str]] = []
    for kind in KINDS:
        mine = [s for s in samples if s.kind == kind]
        if not mine:
            continue
        rows.append(summary_row(kind, CLOSED, [s.closed_s for s in mine]))
        if kind != SESSION_END:
            rows.append(summary_row(kind, REFUSED, [s.refused_s for s in mine]))
    headers = ["revoked by", "until", "samples", "median", "p95", "max", "within 1 s"]
    return markdown_table(headers, rows)


def section(text: str, samples: int) -> str:
    """The report's section: a heading, one line on what was measured, and ``text``."""
    return (
        f"### Revocation latency ({samples} samples per kind, `python -m bench.revocation`)\n\n"
        "From the revocation (the logout sent, `lychgate user disable` started, the session's "
        "end) until the gateway closed the session's WebSocket and answered its cookie with "
        "401; `lychgate serve`, one gateway worker.\n\n"
        f"{text}\n"
    )


# --- the deployment --------------------------------------------------------------------------

_runner = CliRunner()


def cli(*args: str) -> str:
    """``lychgate ARGS`` in this process (blocking: call it through ``asyncio.to_thread``)."""
    result = _runner.invoke(cli_app, list(args))
    if result.exit_code != 0:
        raise RuntimeError(f"`lychgate {' '.join(args[:2])}` failed: {result.output.strip()}")
    return result.output


def throwaway(n: int) -> str:
    """The e-mail address of the ``n``-th user made to be disabled."""
    return f"throwaway{n}@bench.test"


@dataclass(frozen=True, slots=True)
class Deployment:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def mint(self, user: str, ttl: int | None = None) -> str:
        """A fresh session's cookie (blocking)."""
        args = ["token", "mint", "--dir", str(self.data_dir), "--app", APP, "--user", user]
        return parse_cookie(cli(*args, *(["--ttl", str(ttl)] if ttl else [])))


def prepare(data_dir: Path, ws_port: int, throwaways: int) -> Deployment:
    """A deployment with an admin, the bench user, ``throwaways`` users to disable and the
    echo app (blocking)."""
    port = free_port()
    d = str(data_dir)
    cli("init", "--dir", d, "--public-url", f"http://{LOOPBACK}:{port}")
    cli("user", "add", "Admin", "--email", "admin@bench.test", "--admin", "--dir", d)
    cli("user", "add", "Bench", "--email", USER_EMAIL, "--dir", d)
    for n in range(throwaways):
        cli("user", "add", f"Throwaway {n}", "--email", throwaway(n), "--dir", d)
    upstream = f"http://{LOOPBACK}:{ws_port}"
    cli(
        "app",
        "add",
        "--dir",
        d,
        "--slug",
        APP,
        "--name",
        "Chat",
        "--websockets",
        "--upstream",
        upstream,
    )
    return Deployment(data_dir, port)


async def _echo(conn: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):  # the gateway cuts revoked tunnels off
        async for message in conn:
            await conn.send(message)


@contextlib.asynccontextmanager
async def serving(workdir: Path, throwaways: int) -> AsyncIterator[Deployment]:
    """The echo app and ``lychgate serve`` over a fresh deployment, until the gateway admits
    the bench user's cookie."""
    ws_port = free_port()
    async with ws_serve(_echo, LOOPBACK, ws_port):
        dep = await asyncio.to_thread(prepare, workdir, ws_port, throwaways)
        cookie = await asyncio.to_thread(dep.mint, USER_EMAIL)
        argv = [str(lychgate_bin()), "serve", "--dir", str(workdir)]
        argv += ["--listen", f"{LOOPBACK}:{dep.port}"]
        proc: Proc = await start_process("lychgate", argv, workdir / "serve.log")
        try:
            status = await wait_admitted(
                proc, dep.port, {"Cookie": cookie}, workers=1, within=READY_S
            )
            if status not in (200, 426):  # the echo app answers a plain GET with 426
                raise RuntimeError(f"lychgate answered {status} to a freshly minted cookie")
            yield dep
        finally:
            await stop_process(proc)


# --- one sample ------------------------------------------------------------------------------


async def _refused_after(client: httpx.AsyncClient, cookie: str, started: float) -> float:
    while True:
        try:
            r = await client.get("/", headers={"cookie": cookie, "accept": "application/json"})
        except httpx.TransportError:
            # A request admitted just before the revocation and still under way when it
            # arrived is cut with its session (README: what is already open follows the
            # config): not refused yet, so ask again.
            await asyncio.sleep(POLL_S)
            continue
        if r.status_code == 401:
            return time.perf_counter() - started
        await asyncio.sleep(POLL_S)


async def _closed_after(ws: ClientConnection, started: float) -> float:
    await ws.wait_closed()
    return time.perf_counter() - started


async def _bounded(step: asyncio.Future[float] | asyncio.Task[float]) -> float | None:
    try:
        async with asyncio.timeout(HANG_S):
            return await step
    except TimeoutError:
        return None


@contextlib.asynccontextmanager
async def _open_socket(dep: Deployment, cookie: str) -> AsyncIterator[ClientConnection]:
    """A WebSocket through the gateway that has carried one message each way."""
    url = f"ws://{LOOPBACK}:{dep.port}/socket"
    async with ws_connect(url, additional_headers={"cookie": cookie}) as ws:
        await ws.send("ping")
        if await ws.recv() != "ping":
            raise RuntimeError("the echo app did not echo")
        yield ws


async def _effects(
    client: httpx.AsyncClient, ws: ClientConnection, cookie: str, started: float
) -> tuple[float | None, float | None]:
    closed = asyncio.ensure_future(_closed_after(ws, started))
    refused = asyncio.ensure_future(_refused_after(client, cookie, started))
    return await _bounded(closed), await _bounded(refused)


async def logout_sample(dep: Deployment, client: httpx.AsyncClient) -> Sample:
    cookie = await asyncio.to_thread(dep.mint, USER_EMAIL)
    async with _open_socket(dep, cookie) as ws:
        started = time.perf_counter()
        out = await client.get("/.lychgate/logout", headers={"cookie": cookie})
        if out.status_code not in (200, 302, 303):
            raise RuntimeError(f"logout answered {out.status_code}")
        return Sample(LOGOUT, *await _effects(client, ws, cookie, started))


async def disable_sample(dep: Deployment, client: httpx.AsyncClient, n: int) -> Sample:
    cookie = await asyncio.to_thread(dep.mint, throwaway(n))
    async with _open_socket(dep, cookie) as ws:
        started = time.perf_counter()
        await asyncio.to_thread(cli, "user", "disable", throwaway(n), "--dir", str(dep.data_dir))
        return Sample(DISABLE, *await _effects(client, ws, cookie, started))


async def session_end_samples(dep: Deployment, count: int) -> list[Sample]:
    """``count`` sessions that end by themselves, watched together (each is timed from its
    own end: at most ``SESSION_TTL_S`` after the moment before it was minted)."""
    async with contextlib.AsyncExitStack() as stack:
        watched: list[tuple[ClientConnection, float]] = []
        for _ in range(count):
            before = time.perf_counter()
            cookie = await asyncio.to_thread(dep.mint, USER_EMAIL, SESSION_TTL_S)
            ws = await stack.enter_async_context(_open_socket(dep, cookie))
            watched.append((ws, before + SESSION_TTL_S))
        closes = [asyncio.ensure_future(_closed_after(ws, end)) for ws, end in watched]
        return [Sample(SESSION_END, await _bounded(c), None) for c in closes]


async def measure(workdir: Path, samples: int, *, session_ends: int) -> list[Sample]:
    """``samples`` logouts and user disables, one at a time, then ``session_ends`` sessions
    that end by themselves."""
    out: list[Sample] = []
    async with serving(workdir, samples) as dep, httpx.AsyncClient(base_url=dep.url) as client:
        for n in range(samples):
            out.append(await logout_sample(dep, client))
            out.append(await disable_sample(dep, client, n))
        if session_ends:
            out += await session_end_samples(dep, session_ends)
    return out


async def run_section(workdir: Path, samples: int) -> str:
    """The report's section for ``python -m bench``; an error becomes its text."""
    try:
        found = await measure(workdir, samples, session_ends=min(samples, 5))
    except Exception as exc:  # the rest of the report still counts
        return section(f"error: {type(exc).__name__}: {exc}", samples)
    return section(table(found), samples)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.revocation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--samples", type=int, default=20, help="logouts and disables (default 20)")
    p.add_argument(
        "--session-ends", type=int, default=5, help="sessions left to end (default 5; 0: none)"
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep the deployment and its log")
    args = p.parse_args(argv)
    if args.samples < 1 or args.session_ends < 0:
        p.error("--samples must be positive and --session-ends not negative")
    workdir = Path(tempfile.mkdtemp(prefix="lychgate-revocation-"))
    try:
        found = asyncio.run(measure(workdir, args.samples, session_ends=args.session_ends))
    finally:
        if args.keep_workdir:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
