"""``lychgate serve`` and ``lychgate gateway`` as process trees: what refuses to start, that
nothing outlives the process the user started, and what serve's gateway shares with it.

A second gateway with workers used to share a port already served (every worker binds with
SO_REUSEPORT) and take part of its traffic; a taken metrics port ended in tracebacks. A
SIGHUP to serve's parent killed it and left the gateway serving, and so did a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.deployment import exit_code, free_port, lychgate, serve, start_lychgate
from fixtures.processes import all_end, kill_all_with, running_with

pytestmark = [
    pytest.mark.loopback,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="reads the process tree from /proc"),
]


def _deploy(data_dir: Path, port: int, extra: str = "") -> None:
    lychgate("init", "--dir", str(data_dir), "--public-url", f"http://127.0.0.1:{port}")
    config = data_dir / "lychgate.toml"
    config.write_text(f"workers = 2\n{extra}" + config.read_text())  # top-level keys go first


@contextlib.contextmanager
def _cleaned_up(data_dir: Path) -> Iterator[None]:
    """Kill whatever the test started in ``data_dir`` and is still running, even on failure."""
    try:
        yield
    finally:
        kill_all_with(str(data_dir))


async def _start_and_fail(data_dir: Path, command: str, port: int) -> tuple[int, str]:
    """Run ``lychgate COMMAND`` on ``port``, which must refuse to start; its code and stderr.

    Its stderr goes to a file, not a pipe: a process tree that wrongly starts, killed at the
    deadline, must not leave the test waiting for a pipe that an orphan holds open.
    """
    log = data_dir / f"{command}.err"
    err = await asyncio.to_thread(log.open, "wb")
    try:
        proc = await start_lychgate(
            data_dir, command, port, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )
    finally:
        err.close()  # the child has its own copy
    code = await exit_code(proc, data_dir, 10)
    return code, await asyncio.to_thread(log.read_text)


def _metrics_with_worker_1_taken(avoid: int) -> tuple[int, socket.socket]:
    """A free metrics port whose next one (worker 1's) is held by the socket returned."""
    for _ in range(50):
        first = free_port()
        if avoid in (first, first + 1):
            continue
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", first + 1))
        except OSError:
            taken.close()
            continue
        taken.listen()
        return first, taken
    raise AssertionError("no two free ports in a row")


def _sharing_listener() -> socket.socket:
    """A listener bound as a gateway worker binds (SO_REUSEPORT): another gateway's."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", free_port()))
    sock.listen()
    return sock


@pytest.mark.parametrize("command", ["gateway", "serve"])
async def test_a_port_another_gateway_serves_is_refused(data_dir: Path, command: str) -> None:
    with _sharing_listener() as other, _cleaned_up(data_dir):
        port = other.getsockname()[1]
        await asyncio.to_thread(_deploy, data_dir, port)
        code, err = await _start_and_fail(data_dir, command, port)
    assert code == 1, err
    assert f"listen: 127.0.0.1:{port} is already in use" in err
    assert "Traceback" not in err


async def test_a_taken_metrics_port_is_one_clear_error(data_dir: Path) -> None:
    port = free_port()
    metrics, taken = _metrics_with_worker_1_taken(avoid=port)
    with taken, _cleaned_up(data_dir):
        await asyncio.to_thread(
            _deploy, data_dir, port, f'metrics_listen = "127.0.0.1:{metrics}"\n'
        )
        code, err = await _start_and_fail(data_dir, "gateway", port)
    assert code == 1, err
    assert f"metrics_listen (worker 1): 127.0.0.1:{metrics + 1} is already in use" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["gateway", "serve"])
async def test_a_metrics_port_on_the_gateways_own_port_is_one_clear_error(
    data_dir: Path, command: str
) -> None:
    # Each address alone is free, so the OS check passes: worker 1's metrics (metrics_listen's
    # port plus one) then failed to bind, with a traceback, on the port worker 0 had taken.
    port = free_port()
    with _cleaned_up(data_dir):
        await asyncio.to_thread(
            _deploy, data_dir, port, f'metrics_listen = "127.0.0.1:{port - 1}"\n'
        )
        code, err = await _start_and_fail(data_dir, command, port)
    assert code == 2, err  # a configuration error
    line = " ".join(err.split())  # the console wraps long lines
    assert (
        f"configuration error: metrics_listen (worker 1): 127.0.0.1:{port} clashes with "
        f"listen (127.0.0.1:{port})"
    ) in line
    assert "Traceback" not in err


async def test_a_hangup_stops_serve_and_everything_it_started(data_dir: Path) -> None:
    # What a closed terminal sends (and `kill -HUP`): the README's "a closed terminal".
    port = free_port()
    await asyncio.to_thread(_deploy, data_dir, port)
    with _cleaned_up(data_dir):
        async with serve(data_dir, port) as served:
            assert len(running_with(str(data_dir))) == 4  # serve, supervisor, two workers
            served.process.send_signal(signal.SIGHUP)
            async with asyncio.timeout(10):
                assert await served.process.wait() == 0
            await all_end(str(data_dir))


async def test_killing_serve_ends_everything_it_started(data_dir: Path) -> None:
    # SIGKILL leaves serve no chance to stop its children: they must notice themselves.
    port = free_port()
    await asyncio.to_thread(_deploy, data_dir, port)
    with _cleaned_up(data_dir):
        async with serve(data_dir, port) as served:
            served.process.kill()
            await served.process.wait()
            await all_end(str(data_dir))


def _dirty_kib(pid: int) -> tuple[int, int]:
    """A process's dirty memory in KiB: (shared with another process, its own alone)."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:])
    return int(fields["Shared_Dirty"].split()[0]), int(fields["Private_Dirty"].split()[0])


async def test_the_gateway_shares_the_memory_serve_filled_before_forking_it(
    data_dir: Path,
) -> None:
    # serve's parent loads authz, the store and their libraries before it forks the gateway.
    # The gateway's first collection walked all of that, and every page it wrote was copied:
    # two thirds of its dirty memory was its own (59 MiB). Frozen before the fork, two thirds
    # stay shared. One worker: the gateway then shares pages with serve's parent alone.
    port = free_port()
    await asyncio.to_thread(
        lychgate, "init", "--dir", str(data_dir), "--public-url", f"http://127.0.0.1:{port}"
    )
    with _cleaned_up(data_dir):
        async with serve(data_dir, port) as served:
            (gateway,) = (p for p in running_with(str(data_dir)) if p != served.process.pid)
            shared, own = _dirty_kib(gateway)
            assert shared > own, (shared, own)
