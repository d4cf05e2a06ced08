"""What the scenarios run against: a proxy (or the upstream itself) listening on loopback.

A config is a function ``(workdir, upstream_port) -> Target`` that writes its own config files
into ``workdir``, starts its processes and waits until they answer. The runner starts a fresh
target for every scenario, so each memory figure starts from a freshly started process.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Proc, stop_process


class TargetUnavailable(Exception):
    """The target cannot run here (a tool or command is missing); the reason is the message."""


@dataclass(frozen=True, slots=True)
class Target:
    """A running proxy: where it listens, the cookie to send, and the processes to measure."""

    port: int
    cookie: str
    processes: tuple[Proc, ...] = ()
    # Roots of the process trees whose RSS counts as "the proxy"; defaults to ``processes``.
    measured_roots: tuple[int, ...] = field(default=())

    @property
    def rss_roots(self) -> tuple[int, ...]:
        """Pids whose process trees are summed for memory figures."""
        return self.measured_roots or tuple(p.pid for p in self.processes)

    @property
    def headers(self) -> dict[str, str]:
        """Headers every benchmark request carries."""
        return {"Cookie": self.cookie}

    async def stop(self) -> None:
        """Stop every process this target started."""
        await asyncio.gather(*(stop_process(p) for p in self.processes))


def write_files(workdir: Path, files: Mapping[str, bytes]) -> None:
    """Create ``workdir`` and write ``files`` (name -> content) into it. Blocking: run it
    through ``asyncio.to_thread``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (workdir / name).write_bytes(content)


# Statuses that show a proxy admitted the readiness request and reached the upstream: the
# upstreams answer 200, except the WebSocket echo, which answers a plain GET with 426 Upgrade
# Required (RFC 7231 section 6.5.15). A proxy's own refusal (401, 403, a redirect) is not here.
ADMITTED = frozenset({200, 426})


StartTarget = Callable[[Path, int], Awaitable[Target]]


def placeholder_cookie() -> str:
    """A cookie shaped and sized like a real ES256 app token (~450 bytes), for non-Lychgate
    configs, so every config parses requests of about the same size. Only its presence is
    checked."""
    header, claims, sig = (secrets.token_urlsafe(n) for n in (75, 190, 64))
    return f"lychgate={header}.{claims}.{sig}"
