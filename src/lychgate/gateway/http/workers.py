"""Worker processes sharing one port through SO_REUSEPORT.

Theory of operation
-------------------
:func:`run_workers` forks ``n`` workers and supervises them. Each worker runs
``main(stop, slot)`` on its own uvloop, ``slot`` being its number from 0 to ``n - 1``. A
worker started in place of one that died takes its slot, so what a worker binds apart from
the shared port (a metrics listener at ``port + slot``) stays the same. ``main`` binds its
listener with ``reuse_port=True`` (the kernel then spreads new connections over the
workers), waits for ``stop``, and shuts down gracefully. The supervisor holds no sockets and
runs no event loop: it forwards SIGTERM and SIGINT to the workers (which set ``stop``),
passes on the signals named in ``relay`` (SIGHUP, for a certificate check), replaces a
worker that dies unexpectedly, and returns once all have exited. A signal that comes while
it is still forking stops the forking too.

A worker that dies within :data:`MIN_UPTIME` seconds of starting is not replaced: it is
broken (a port in use, a bad config), and replacing it would only spin. The supervisor then
stops the others and returns that worker's exit code.

Call it from plain synchronous code, before any event loop runs in the process: forking a
process with a running loop copies the loop's state into every child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import types
from collections.abc import Awaitable, Callable

import uvloop

log = logging.getLogger(__name__)

MIN_UPTIME = 1.0
WorkerMain = Callable[[asyncio.Event, int], Awaitable[None]]


async def _worker(main: WorkerMain, slot: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await main(stop, slot)


def _spawn(main: WorkerMain, slot: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    for signum in (signal.SIGTERM, signal.SIGINT):  # not the supervisor's handler
        signal.signal(signum, signal.SIG_DFL)
    if signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # relayed: the worker's loop handles it
    code = 0
    try:
        uvloop.run(_worker(main, slot))
    except BaseException:
        log.exception("gateway worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)  # never return into the supervisor's code


def run_workers(n: int, main: WorkerMain, *, relay: tuple[signal.Signals, ...] = ()) -> int:
    """Run ``main`` in ``n`` forked workers until they exit; returns the worst exit code.

    Signals in ``relay`` are sent on to every worker; a worker must handle them (or ignore
    them, as it inherits the supervisor's "ignore" until its own loop installs a handler).
    """
    if n < 1:
        raise ValueError("at least one worker")
    workers: dict[int, tuple[float, int]] = {}  # pid -> (start time, slot)
    stopping = False
    worst = 0

    def stop_all(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop_asked() -> bool:  # read through a call: a signal handler may set it any time
        return stopping

    def pass_on(signum: int, frame: types.FrameType | None) -> None:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {s: signal.signal(s, stop_all) for s in (signal.SIGTERM, signal.SIGINT)}
    previous.update({s: signal.signal(s, pass_on) for s in relay})
    try:
        for slot in range(n):
            if stop_asked():
                break  # a signal while forking: start no more
            pid = _spawn(main, slot)
            workers[pid] = (time.monotonic(), slot)
            if stop_asked():  # it came between the fork and the line above: it missed this one
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            known = workers.pop(pid, None)
            if known is None:
                continue
            started, slot = known
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                worst = worst or code
            if stopping:
                continue
            if time.monotonic() - started < MIN_UPTIME:
                log.error("gateway worker %d exited at start (%d); stopping", pid, code)
                worst = worst or code or 1
                stop_all(signal.SIGTERM, None)
                continue
            log.warning("gateway worker %d exited (%d); starting another", pid, code)
            workers[_spawn(main, slot)] = (time.monotonic(), slot)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return worst
