"""The Lychgate gateway as a benchmark target, driven through its CLI.

Setting up (``init``, ``user add``, ``app add``, ``token mint``) is done once per upstream and
shared by the one-worker and N-worker configs: the directory holds the keys, and the cookie is a
real signed ES256 app token minted from them, so every request pays the full admission check.
The deployment gets an admin user too: until one exists every app request is answered 503
``setup_required``.

It runs as ``lychgate serve``: authz on its unix socket plus the gateway workers, since a gateway
alone has no config until it follows authz's feed. Memory figures therefore include authz's
process, which sits idle during the load (it only sent the snapshot at start-up).

Any failure of the CLI (a command that does not exist yet, a gateway that exits at start-up)
raises TargetUnavailable; the runner prints "lychgate target unavailable: <reason>" and goes on.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import LOOPBACK, Proc, free_port, port_is_free, start_process, wait_ready
from bench.targets import ADMITTED, StartTarget, Target, TargetUnavailable, write_files

CLI_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 30.0
SETUP_FILE = "bench-setup.json"
# RFC 6761 section 6.2: .test is reserved, so this address can never reach anybody.
BENCH_EMAIL = "bench@bench.test"
ADMIN_EMAIL = "admin@bench.test"
ADMITTED_STREAK = 10  # admitted answers in a row per worker before the target counts as ready
SETTLE_S = 0.5


@dataclass(frozen=True, slots=True)
class LychgateSetup:
    """A deployment directory ready to serve: its fixed public port and a minted cookie."""

    port: int
    cookie: str


def lychgate_bin() -> Path:
    """The ``lychgate`` script of the virtualenv that runs the harness."""
    return Path(sys.executable).parent / "lychgate"


# Box-drawing characters around rich/typer error panels.
_FRAME = "\u2500\u2502\u256d\u256e\u2570\u256f "


def _last_line(text: str) -> str:
    """The last line of CLI output that says something, without the frame of an error panel
    ("No such option: --listen" rather than its box)."""
    for line in reversed(text.splitlines()):
        stripped = line.strip(_FRAME)
        if stripped and stripped != "Error" and not stripped.startswith("Error \u2500"):
            return stripped
    return ""


async def _cli(args: Sequence[str]) -> str:
    """Run ``lychgate *args``; return stdout or raise TargetUnavailable with the reason."""
    exe = lychgate_bin()
    command = f"lychgate {' '.join(args[:2])}"
    try:
        proc = await asyncio.create_subprocess_exec(
            str(exe),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise TargetUnavailable(f"cannot run {exe}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise TargetUnavailable(f"`{command}` did not finish in {CLI_TIMEOUT_S:.0f}s") from exc
    if proc.returncode != 0:
        why = _last_line(err.decode(errors="replace")) or _last_line(out.decode(errors="replace"))
        raise TargetUnavailable(f"`{command}` exited {proc.returncode}: {why}")
    return out.decode(errors="replace")


def parse_cookie(output: str) -> str:
    """The cookie (``name=value``) printed by ``lychgate token mint``: the last output line
    that is a single ``name=value`` word, so a status line around it does not matter."""
    for line in reversed(output.splitlines()):
        word = line.strip()
        if word.lower().startswith("cookie:"):
            word = word.split(":", 1)[1].strip()
        name, sep, value = word.partition("=")
        if sep and name and value and " " not in word and ";" not in word:
            return word
    raise TargetUnavailable(f"`lychgate token mint` printed no cookie: {output.strip()[:120]!r}")


async def prepare_lychgate(setup_dir: Path, upstream_port: int) -> LychgateSetup:
    """Initialise a deployment in ``setup_dir`` with one user and one app proxying to
    ``upstream_port``, and mint a cookie for them. Done once; later calls read it back."""
    saved = setup_dir / SETUP_FILE
    if await asyncio.to_thread(saved.exists):
        data = json.loads(await asyncio.to_thread(saved.read_text))
        return LychgateSetup(port=int(data["port"]), cookie=str(data["cookie"]))
    port = free_port()
    d = str(setup_dir)
    upstream = f"http://{LOOPBACK}:{upstream_port}"
    try:
        # Plain http is allowed on loopback; the app cookie is then ``lychgate``.
        await _cli(["init", "--dir", d, "--public-url", f"http://{LOOPBACK}:{port}"])
        await _cli(["user", "add", "--dir", d, "--email", ADMIN_EMAIL, "--admin", "Admin"])
        await _cli(["user", "add", "--dir", d, "--email", BENCH_EMAIL, "Bench"])
        app = ["--slug", "bench", "--name", "Bench", "--upstream", upstream, "--websockets"]
        await _cli(["app", "add", "--dir", d, *app])
        minted = await _cli(["token", "mint", "--dir", d, "--app", "bench", "--user", BENCH_EMAIL])
        cookie = parse_cookie(minted)
    except BaseException:
        # A half-made deployment would make the next attempt fail differently ("slug exists").
        await asyncio.to_thread(shutil.rmtree, setup_dir, True)
        raise
    record = json.dumps({"port": port, "cookie": cookie}).encode()
    await asyncio.to_thread(write_files, setup_dir, {SETUP_FILE: record})
    return LychgateSetup(port=port, cookie=cookie)


async def wait_admitted(
    proc: Proc, port: int, headers: dict[str, str], *, workers: int, within: float
) -> int:
    """Wait until requests with the cookie are admitted; return the last status seen.

    Each worker answers 503 until its config feed has delivered the first snapshot, and each new
    connection may land on any worker (SO_REUSEPORT), so readiness is ``ADMITTED_STREAK *
    workers`` admitted answers in a row, each on a fresh connection; with several workers the
    streak is asked for twice, a moment apart, so that a late worker has caught up.
    """
    deadline = time.monotonic() + within
    rounds = 1 if workers == 1 else 2
    status = 0
    for round_ in range(rounds):
        if round_:
            await asyncio.sleep(SETTLE_S)
        streak = 0
        while streak < ADMITTED_STREAK * workers:
            if time.monotonic() > deadline:
                return status
            if streak == 0 and status:
                await asyncio.sleep(0.05)
            status = await wait_ready(proc, port, path="/small", headers=headers, within=within)
            streak = streak + 1 if status in ADMITTED else 0
    return status


async def start_lychgate(workdir: Path, upstream_port: int, workers: int) -> Target:
    """Start ``lychgate serve`` with ``workers`` gateway workers on the deployment in
    ``workdir`` (set up on first use) and wait until it admits a request carrying the minted
    cookie."""
    setup = await prepare_lychgate(workdir, upstream_port)
    if not port_is_free(setup.port):
        raise RuntimeError(f"port {setup.port} of the lychgate deployment is taken")
    argv = [str(lychgate_bin()), "serve", "--dir", str(workdir)]
    argv += ["--listen", f"{LOOPBACK}:{setup.port}", "--workers", str(workers)]
    proc = await start_process(f"lychgate-{workers}w", argv, workdir / f"serve-{workers}w.log")
    target = Target(port=setup.port, cookie=setup.cookie, processes=(proc,))
    try:
        status = await wait_admitted(
            proc, setup.port, target.headers, workers=workers, within=READY_TIMEOUT_S
        )
    except RuntimeError as exc:
        await target.stop()
        code = proc.process.returncode
        if code is not None and code != -signal.SIGTERM:  # it exited on its own at start-up
            why = _last_line(await asyncio.to_thread(proc.log_tail, 2000))
            raise TargetUnavailable(f"`lychgate serve` exited {code}: {why}") from exc
        raise
    except BaseException:
        await target.stop()
        raise
    if status not in ADMITTED:
        await target.stop()
        raise RuntimeError(f"lychgate answered {status} to a request with the minted cookie")
    return target


def lychgate_config(root: Path, workers: int) -> StartTarget:
    """A config for the runner: deployments live in ``root``, one per upstream port, and are
    shared between worker counts."""

    async def start(workdir: Path, upstream_port: int) -> Target:
        del workdir  # the deployment directory is shared; see above
        return await start_lychgate(root / f"up{upstream_port}", upstream_port, workers)

    return start
