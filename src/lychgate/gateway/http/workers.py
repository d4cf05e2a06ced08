"""Worker processes sharing one port through SO_REUSEPORT.

Theory of operation
-------------------
:func:`run_workers` forks ``n`` workers and supervises them. Each worker runs
``main(stop, slot)`` on its own uvloop, ``slot`` being its number from 0 to ``n - 1``. A
worker started in place of one that died takes its slot, so what a worker binds apart from
the shared port (a metrics listener at ``port + slot``) stays the same. ``main`` binds its
listener with ``reuse_port=True`` (the kernel then spreads new connections over the
workers), waits for ``stop``, and shuts down gracefully. The supervisor holds no sockets and
runs no event loop: it forwards SIGTERM, SIGINT and SIGHUP (a closed terminal) to the workers
as SIGTERM (they set ``stop``, and drain), and a later SIGINT as SIGINT (a second Ctrl-C, which
cuts their drain short: :mod:`.stop`), passes on instead the signals named in ``relay`` (SIGHUP, for
a certificate check), replaces a worker that dies unexpectedly, and returns once all have
exited. A signal that comes while it is still forking stops the forking too.

A worker of the first start that dies within :data:`MIN_UPTIME` seconds is not replaced: it
is broken (a bad config, say), and replacing it would only spin. The supervisor then stops the
others and returns that worker's exit code. A worker that dies later is logged and replaced at
once; having recovered, it does not make the exit code non-zero. A replacement that itself
dies within :data:`MIN_UPTIME` (its metrics port taken meanwhile, the machine out of memory)
is tried again after a delay that doubles up to :data:`MAX_RESTART_DELAY`, while the other
workers go on serving: one bad restart used to stop them all. Only a worker failing at the
first start or while stopping makes the exit code non-zero.

Workers never outlive the supervisor: on Linux each asks the kernel, right after the fork, for
a SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so a supervisor killed with SIGKILL
leaves no orphan serving the port. :func:`end_with_parent` does this for ``serve``'s children
too.

SO_REUSEPORT lets any process of the same user join the port, a second gateway included,
and take part of its traffic without an error. :func:`check_free` binds without it, as a
single worker does, so that the caller can refuse a port in use before it forks.

Call it from plain synchronous code, before any event loop runs in the process: forking a
process with a running loop copies the loop's state into every child.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import sys
import time
import types
from collections.abc import Awaitable, Callable

import uvloop

from lychgate.errors import LychgateError
from lychgate.gateway.http.stop import Stop

log = logging.getLogger(__name__)

MIN_UPTIME = 1.0
RESTART_DELAY = 1.0  # before trying a slot again whose replacement died at start; doubles
MAX_RESTART_DELAY = 30.0
_POLL = 0.05  # seconds between looks for a dead worker while a restart is due
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WorkerMain = Callable[[Stop, int], Awaitable[None]]
# Starts one worker: (main, slot, stop signals, relayed signals) -> its pid.
Spawn = Callable[[WorkerMain, int, tuple[signal.Signals, ...], tuple[signal.Signals, ...]], int]


def check_free(host: str, port: int, what: str) -> None:
    """Raise a one-line :class:`LychgateError` naming ``what`` (a setting) unless ``host:port``
    can be listened on by a single socket.

    It binds without SO_REUSEPORT, which a worker sets and which would let it join a port that
    another gateway's workers serve; with SO_REUSEADDR, as every listener here, so that
    connections of a gateway just stopped, in TIME_WAIT, do not count. The socket is closed
    at once. Port 0 (any free port) is always free.
    """
    if port == 0:
        return
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            try:
                probe = socket.socket(family, kind, proto)
            except OSError:
                continue  # a family this host lacks (IPv6 off): the listener skips it too
            with probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:  # as the listener itself: IPv6 only
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            message = f"{shown} is already in use"  # short: the CLI prints it as one line
        else:
            message = f"cannot listen on {shown}: {exc.strerror or exc}"
        raise LychgateError(message, field=what) from None


def end_with_parent(parent: int) -> None:
    """Make this process, just forked from ``parent``, end when its parent does.

    On Linux the kernel sends SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), so the
    child stops as gracefully as on any SIGTERM. The kernel ties this to the parent's thread
    that forked, not to the process: fork from the main thread. A parent that died before the
    call is caught by the ppid no longer being ``parent``, and the child then exits at once.
    Where prctl is missing (not Linux), the child may outlive its parent, as it always did.
    """
    if not _ask_for_sigterm_on_parent_death():
        log.debug("no PR_SET_PDEATHSIG here: pid %d may outlive its parent", os.getpid())
    if os.getppid() != parent:
        os._exit(0)  # orphaned already: it never started, so nothing to stop


def _ask_for_sigterm_on_parent_death() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    zero = ctypes.c_ulong(0)
    done = prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM), zero, zero, zero)
    return bool(done == 0)


async def _worker(main: WorkerMain, slot: int, stops: tuple[signal.Signals, ...]) -> None:
    loop = asyncio.get_running_loop()
    stop = Stop(loop.time)
    stop.install(loop, stops)
    await main(stop, slot)


def _spawn(
    main: WorkerMain,
    slot: int,
    stops: tuple[signal.Signals, ...],
    relay: tuple[signal.Signals, ...],
) -> int:
    parent = os.getpid()
    # Blocked across the fork: a stop sent to the child before it has reset the supervisor's
    # handlers waits, and meets the default. Run by the child's stale copy of "stop every
    # worker", it was swallowed, and the worker served on, its supervisor waiting for ever.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, (*stops, *relay))
    try:
        pid = os.fork()
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    if pid:
        return pid
    # The supervisor's handlers first: a parent's death signal must find the default, not
    # the supervisor's "stop every worker" run on this child's stale copy of the list.
    for signum in stops:
        signal.signal(signum, signal.SIG_DFL)
    for signum in relay:
        signal.signal(signum, signal.SIG_IGN)  # the worker's loop handles it
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    end_with_parent(parent)
    code = 0
    try:
        uvloop.run(_worker(main, slot, stops))
    except (LychgateError, OSError) as exc:  # a port taken meanwhile, say: one line, retried
        log.error("gateway worker %d (slot %d) failed: %s", os.getpid(), slot, exc)
        code = 1
    except BaseException:
        log.exception("gateway worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)  # never return into the supervisor's code


def _reap(until: float | None, stop_asked: Callable[[], bool]) -> tuple[int, int]:
    """Wait for a worker to exit: its (pid, status); (0, 0) once ``until`` (monotonic) comes
    first, or a stop is asked meanwhile; (-1, 0) when there is no child at all to wait for."""
    while True:
        try:
            if until is None:
                return os.wait()
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            if until is None:
                return -1, 0
            pid, status = 0, 0  # none now: a retry is all there is to wait for
        if pid:
            return pid, status
        left = until - time.monotonic()
        if left <= 0 or stop_asked():
            return 0, 0
        time.sleep(min(_POLL, left))


def run_workers(
    n: int,
    main: WorkerMain,
    *,
    relay: tuple[signal.Signals, ...] = (),
    spawn: Spawn = _spawn,
) -> int:
    """Run ``main`` in ``n`` forked workers until they exit; returns the exit code of the
    first that failed at start or while stopping, else 0.

    Signals in ``relay`` are sent on to every worker; a worker must handle them (or ignore
    them, as it inherits the supervisor's "ignore" until its own loop installs a handler).
    The others of SIGTERM, SIGINT and SIGHUP stop the workers. ``spawn`` starts a worker and
    returns its pid (default: fork one running ``main``); tests pass their own.
    """
    if n < 1:
        raise ValueError("at least one worker")
    stops = tuple(s for s in STOP_SIGNALS if s not in relay)
    workers: dict[int, tuple[float, int]] = {}  # pid -> (start time, slot)
    proven: set[int] = set()  # slots where a worker outlived MIN_UPTIME
    due: dict[int, float] = {}  # slot -> when to try it again (its replacement died at start)
    delays: dict[int, float] = {}  # slot -> the delay its last retry waited
    stopping = False
    worst = 0

    def stop_all(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        # A later Ctrl-C goes on as SIGINT: to a worker, a second press (.stop), which cuts
        # its drain short.
        passed = signal.SIGINT if stopping and signum == signal.SIGINT else signal.SIGTERM
        stopping = True
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, passed)

    def stop_asked() -> bool:  # read through a call: a signal handler may set it any time
        return stopping

    def pass_on(signum: int, frame: types.FrameType | None) -> None:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {s: signal.signal(s, stop_all) for s in stops}
    previous.update({s: signal.signal(s, pass_on) for s in relay})

    def start(slot: int) -> None:
        pid = spawn(main, slot, stops, relay)
        workers[pid] = (time.monotonic(), slot)
        if stop_asked():  # it came between the fork and the line above: it missed this one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    try:
        for slot in range(n):
            if stop_asked():
                break  # a signal while forking: start no more
            start(slot)
        while workers or (due and not stop_asked()):
            until = None if stop_asked() or not due else min(due.values())
            pid, status = _reap(until, stop_asked)
            if pid < 0:
                break  # no child left, though some were counted: nothing to wait for
            if pid == 0:  # a retry is due, or a stop came while waiting for one
                if stop_asked():
                    continue
                now = time.monotonic()
                for slot, when in list(due.items()):
                    if when <= now:
                        del due[slot]
                        start(slot)
                continue
            known = workers.pop(pid, None)
            if known is None:
                continue
            started, slot = known
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                # It failed to stop cleanly; but one ended by the stop itself, before its loop
                # took the signal over, had nothing to drain (the exit code was 241).
                if code not in (-signal.SIGTERM, -signal.SIGINT):
                    worst = worst or code
                continue
            if time.monotonic() - started >= MIN_UPTIME:
                proven.add(slot)
                delays.pop(slot, None)
                # A crash recovered from: logged here, and no failure of the eventual stop.
                log.warning("gateway worker %d exited (%d); starting another", pid, code)
                start(slot)
            elif slot in proven or code == 0:
                # A replacement that failed at start, or a worker stopped cleanly by a signal
                # of its own (an operator's `kill` of one worker; a failure to start exits
                # non-zero): try again later, the others serve on.
                delay = min(delays.get(slot, RESTART_DELAY / 2) * 2, MAX_RESTART_DELAY)
                delays[slot] = delay
                due[slot] = time.monotonic() + delay
                log.error(
                    "gateway worker %d (slot %d) exited at start (%d); trying again in %g s",
                    pid,
                    slot,
                    code,
                    delay,
                )
            else:
                log.error("gateway worker %d exited at start (%d); stopping", pid, code)
                worst = worst or code or 1
                stop_all(signal.SIGTERM, None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return worst
