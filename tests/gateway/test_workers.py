"""Worker processes on one port (lychgate.gateway.http.workers), run in a child interpreter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from e2e.deployment import free_port
from fixtures.processes import all_end, kill_all_with
from gateway.client import RawClient, get
from lychgate.errors import LychgateError
from lychgate.gateway.http import workers
from lychgate.gateway.http.stop import Stop

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

SCRIPT = """
import asyncio, os, sys
from lychgate.gateway.http import start_server
from lychgate.gateway.http.workers import run_workers
from lychgate.gateway.types import Respond

PORT = int(sys.argv[1])

async def main(stop: asyncio.Event, slot: int) -> None:
    pid = b"%d:%d" % (os.getpid(), slot)
    gw = await start_server(lambda head: Respond(200, (), pid), port=PORT, reuse_port=True)
    await stop.wait()
    await gw.close(drain_timeout=1)

sys.exit(run_workers(int(sys.argv[2]), main))
"""


async def _ask(port: int) -> bytes:
    c = await RawClient.connect(port)
    try:
        await c.send(get())
        return (await c.read_response()).body
    finally:
        await c.close()


@contextlib.asynccontextmanager
async def _running(
    script: Path, *args: str, stop: signal.Signals = signal.SIGTERM
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``script``; on leaving, ``stop`` must stop it cleanly (exit code 0), workers and
    all. Whatever it started is killed at the end, even when the test failed."""
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), *args)
    try:
        yield proc
        proc.send_signal(stop)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
        await all_end(str(script))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        kill_all_with(str(script))


async def _slots(port: int, count: int = 2) -> dict[bytes, bytes]:
    """Ask until ``count`` workers answered; their pids by slot."""
    pids: dict[bytes, bytes] = {}
    async with asyncio.timeout(10):
        while len(pids) < count:
            try:
                pid, _, slot = (await _ask(port)).partition(b":")
                pids[slot] = pid
            except OSError:
                await asyncio.sleep(0.05)
    return pids


async def test_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    port = free_port()
    async with _running(script, str(port), "2"):
        pids: set[bytes] = set()
        async with asyncio.timeout(10):
            while len(pids) < 2:
                try:
                    pids.add(await _ask(port))
                except OSError:
                    await asyncio.sleep(0.05)
        assert len(pids) == 2  # two processes answered on one port
        assert {answer.partition(b":")[2] for answer in pids} == {b"0", b"1"}  # each its slot


async def test_a_worker_that_cannot_start_stops_the_rest(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    with socket.socket() as taken:  # without SO_REUSEPORT: the workers cannot bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(port),
            "2",
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
        assert proc.returncode != 0
    # One line that says why, not a traceback (a replacement retried every 30 s wrote one
    # each time).
    assert b"failed: " in err
    assert b"address already in use" in err.lower()
    assert b"Traceback" not in err


RELAY_SCRIPT = """
import asyncio, os, signal, sys
from lychgate.gateway.http import start_server
from lychgate.gateway.http.workers import run_workers
from lychgate.gateway.types import Respond

PORT = int(sys.argv[1])

async def main(stop: asyncio.Event, slot: int) -> None:
    hups = []
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hups.append, 1)
    answer = lambda head: Respond(200, (), b"%d:%d" % (os.getpid(), len(hups)))
    gw = await start_server(answer, port=PORT, reuse_port=True)
    await stop.wait()
    await gw.close(drain_timeout=1)

sys.exit(run_workers(2, main, relay=(signal.SIGHUP,)))
"""


async def test_the_supervisor_passes_sighup_on_to_every_worker(tmp_path: Path) -> None:
    # What `lychgate gateway --workers N` relies on for `systemctl reload` (certificates).
    script = tmp_path / "relay.py"
    script.write_text(RELAY_SCRIPT)
    port = free_port()
    async with _running(script, str(port)) as proc:
        seen: dict[bytes, bytes] = {}  # pid -> SIGHUPs that worker has handled
        async with asyncio.timeout(10):
            while len(seen) < 2:
                try:
                    pid, _, hups = (await _ask(port)).partition(b":")
                    seen[pid] = hups
                except OSError:
                    await asyncio.sleep(0.05)
        assert set(seen.values()) == {b"0"}
        proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):
            while set(seen.values()) != {b"1"}:
                pid, _, hups = (await _ask(port)).partition(b":")
                seen[pid] = hups
        assert proc.returncode is None  # the supervisor itself lives on


def test_a_signal_while_forking_stops_the_forking() -> None:
    # A SIGTERM that lands while the supervisor is still starting workers: the one just
    # started is stopped too, and no more are started.
    started: list[subprocess.Popen[bytes]] = []

    def spawn_then_signal(main: object, slot: int, *signals: object) -> int:
        child = subprocess.Popen(["sleep", "30"])
        started.append(child)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)  # the signal, between the fork and the bookkeeping
        return child.pid

    async def never(stop: Stop, slot: int) -> None:
        raise AssertionError("no worker code runs here")

    try:
        # The worker ended by the stop itself (here before it could take the signal over)
        # stopped cleanly: it had nothing to drain. Its -15 made the exit code 241.
        assert workers.run_workers(3, never, spawn=spawn_then_signal) == 0
        assert len(started) == 1
    finally:
        for child in started:
            child.kill()


def test_a_stop_that_reaches_a_worker_before_its_handlers_are_set_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A SIGTERM sent to a worker between its fork and the reset of the supervisor's handlers
    # (the supervisor stops a worker it has just forked) ran the child's stale copy of "stop
    # every worker", which swallowed it: the worker served on, and the supervisor waited
    # for it for ever. Here the signal is sent in that window, every time.
    fork = os.fork

    def fork_then_signal() -> int:
        pid = fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return pid

    ran = tmp_path / "ran"

    async def main(stop: Stop, slot: int) -> None:
        ran.write_text("the worker served")

    monkeypatch.setattr(os, "fork", fork_then_signal)
    swallowed: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: swallowed.append(signum))
    try:
        pid = workers._spawn(main, 0, workers.STOP_SIGNALS, ())
    finally:
        signal.signal(signal.SIGTERM, previous)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM
    assert not ran.exists()
    assert swallowed == []  # nor did this process get it


async def test_a_hangup_stops_the_workers_as_sigterm_does(tmp_path: Path) -> None:
    # A closed terminal (``serve``'s gateway relays no SIGHUP): a graceful stop, not a
    # supervisor killed by the default action with its workers left serving.
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    port = free_port()
    async with _running(script, str(port), "2", stop=signal.SIGHUP):
        await _slots(port)


async def test_a_clean_stop_after_a_replaced_worker_exits_0(tmp_path: Path) -> None:
    # The crash is logged when it happens; it was recovered from, so it is no failure of the
    # stop (which used to return the -9 of the replaced worker).
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    port = free_port()
    async with _running(script, str(port), "2"):
        first = await _slots(port)
        await asyncio.sleep(workers.MIN_UPTIME)  # past start-up: a death now is a crash
        os.kill(int(first[b"0"]), signal.SIGKILL)
        async with asyncio.timeout(10):
            while (await _slots(port))[b"0"] == first[b"0"]:
                await asyncio.sleep(0.05)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
async def test_the_workers_end_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(SCRIPT)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(port), "2")
    try:
        await _slots(port)
        proc.kill()  # SIGKILL: the supervisor cannot stop its workers itself
        await proc.wait()
        await all_end(str(script))
        with pytest.raises(ConnectionRefusedError):
            await _ask(port)  # nobody serves the port any more
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        kill_all_with(str(script))


def test_the_port_check_refuses_a_port_another_gateway_shares() -> None:
    # Another gateway with workers binds with SO_REUSEPORT, which a worker of this one would
    # join without an error: the check binds without it, as one worker would.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(LychgateError, match=f"listen: 127.0.0.1:{port} is already in use"):
            workers.check_free("127.0.0.1", port, "listen")


def test_the_port_check_ignores_connections_in_time_wait() -> None:
    # A gateway restarted at once finds its old connections in TIME_WAIT on the port.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as start_server's
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server's side closes first: its socket stays in TIME_WAIT
            client.recv(1)
    workers.check_free("127.0.0.1", port, "listen")


def _stop_as_sigterm_does() -> None:
    """Call the supervisor's own SIGTERM handler, as a signal would."""
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    handler(signal.SIGTERM, None)


def _supervise(
    commands: list[list[str]], before_spawn: Callable[[list[subprocess.Popen[bytes]]], None]
) -> list[subprocess.Popen[bytes]]:
    """``run_workers(2)`` whose workers are ``commands``, one per spawn in turn;
    ``before_spawn`` sees those started so far. Returns them all, killed."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(main: object, slot: int, *signals: object) -> int:
        before_spawn(started)
        child = subprocess.Popen(commands.pop(0))
        started.append(child)
        return child.pid

    async def never(stop: Stop, slot: int) -> None:
        raise AssertionError("no worker code runs here")

    try:
        workers.run_workers(2, never, spawn=spawn)
    finally:
        for child in started:
            child.kill()
            child.wait()
    return started


def test_a_replacement_that_dies_at_start_is_tried_again_while_the_others_serve(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A worker killed, then its replacement dying at start (its metrics port taken meanwhile):
    # that used to stop every worker, and under serve authz too.
    monkeypatch.setattr(workers, "MIN_UPTIME", 0.3)
    monkeypatch.setattr(workers, "RESTART_DELAY", 0.1)
    commands = [
        ["sleep", "30"],  # slot 0, serving all along
        ["sleep", "0.5"],  # slot 1: serves past MIN_UPTIME, then dies
        ["true"],  # its replacement dies at start...
        ["true"],  # ... and so does the first retry
    ]
    alive_at_the_end: list[bool] = []

    def second_retry_stops(started: list[subprocess.Popen[bytes]]) -> None:
        if not commands:  # the second retry: the first worker is still there; then stop
            alive_at_the_end.append(started[0].poll() is None)
            _stop_as_sigterm_does()
            commands.append(["sleep", "30"])

    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.workers"):
        started = _supervise(commands, second_retry_stops)
    assert alive_at_the_end == [True]
    assert len(started) == 5
    retries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert [m.rsplit("trying again in ", 1)[1] for m in retries] == ["0.1 s", "0.2 s"]
    assert "stopping" not in caplog.text


def test_a_worker_stopped_cleanly_in_its_first_second_is_replaced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A SIGTERM to one worker half a second after start: it drains and exits 0, which used to
    # count as a failure to start and stop the whole gateway with code 1.
    monkeypatch.setattr(workers, "RESTART_DELAY", 0.1)
    commands = [["sleep", "30"], ["true"], ["sleep", "30"]]

    def replacement_stops(started: list[subprocess.Popen[bytes]]) -> None:
        if len(started) == 2:  # the replacement comes next: stop, as an operator would
            _stop_as_sigterm_does()

    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.workers"):
        started = _supervise(commands, replacement_stops)
    assert len(started) == 3  # the one that exited 0 was replaced
    assert "trying again in 0.1 s" in caplog.text
    assert "stopping" not in caplog.text
