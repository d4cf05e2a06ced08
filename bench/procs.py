"""Start, stop and measure the processes of one benchmark run.

Each server runs in its own session (so its own process group): stopping it signals the whole
group, then kills anything of that group still alive, so no worker outlives the run. Memory is
the sum of VmRSS over a process and all its descendants (nginx's master and workers, a gateway's
forked workers), read from /proc (proc(5)).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Proc:
    """A server process that we started, with the file its output goes to."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        """The pid of the process we started; also its process-group id."""
        return self.process.pid

    def log_tail(self, limit: int = 600) -> str:
        """The last ``limit`` characters of the process's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:].strip()


async def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start ``argv`` in a new session, its stdout and stderr going to ``log_path``."""
    log = await asyncio.to_thread(log_path.open, "ab")
    with log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return Proc(name=name, process=process, log_path=log_path)


async def stop_process(proc: Proc, grace: float = 5.0) -> None:
    """Stop a process group: SIGTERM, then SIGKILL after ``grace`` seconds, then stragglers."""
    pgid = proc.pid
    if proc.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            await asyncio.wait_for(proc.process.wait(), grace)
    # The leader is gone; kill, by pid, any member of its group that is still around.
    deadline = time.monotonic() + grace
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.05)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids whose process group is ``pgid``."""
    members = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(pid)
    return members


def descendants(roots: Iterable[int]) -> set[int]:
    """The given pids and every live process descended from them."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def rss_kib(pids: Iterable[int]) -> int:
    """Sum of VmRSS (KiB) over ``pids``; processes that have exited count as zero."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
    return total


class RssSampler:
    """Sample the RSS of some process trees on a thread; records baseline, peak and last.

    A thread rather than an asyncio task so that reading /proc never stalls the load
    generator's event loop, and so the load never delays a sample.
    """

    def __init__(self, roots: Sequence[int], interval: float = 0.02) -> None:
        self._roots = tuple(roots)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._pids: set[int] = descendants(self._roots)
        self.baseline_kib = rss_kib(self._pids)
        self.peak_kib = self.baseline_kib
        self.last_kib = self.baseline_kib

    @property
    def growth_kib(self) -> int:
        """Peak RSS minus the RSS when sampling started."""
        return self.peak_kib - self.baseline_kib

    def _loop(self) -> None:
        ticks = 0
        while not self._stop.wait(self._interval):
            ticks += 1
            if ticks % 25 == 0:  # workers may come and go; rescanning /proc every tick costs CPU
                self._pids = descendants(self._roots)
            self.last_kib = rss_kib(self._pids)
            self.peak_kib = max(self.peak_kib, self.last_kib)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


def raise_nofile(want: int = 65536) -> int:
    """Raise RLIMIT_NOFILE (inherited by every server we start); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):  # not root: go as high as the hard limit allows
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` on loopback right now.

    With SO_REUSEADDR, as servers bind: connections that a previous server on the port closed
    linger in TIME-WAIT for a minute, and they do not stop a new listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


async def http_status(port: int, path: str, headers: Mapping[str, str], limit_s: float) -> int:
    """One GET over a fresh connection; return the status code."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), limit_s)
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status_line = await asyncio.wait_for(reader.readline(), limit_s)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def wait_ready(
    proc: Proc,
    port: int,
    *,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    within: float = 20.0,
) -> int:
    """Wait until ``port`` answers HTTP; return the status. Fails early if ``proc`` exits."""
    deadline = time.monotonic() + within
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.process.returncode is not None:
            tail = await asyncio.to_thread(proc.log_tail)
            raise RuntimeError(f"{proc.name} exited with {proc.process.returncode}: {tail}")
        try:
            return await http_status(port, path, headers or {}, limit_s=2.0)
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready on port {port} after {within:.0f}s ({last_error})")
