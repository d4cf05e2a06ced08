"""``lychgate serve``: one command, one process tree, a clean Ctrl-C.

Theory of operation
-------------------
The gateway is forked first, before any event loop exists in this process (forking a running
loop copies its state), and after the heap is frozen for the cyclic collector (what serve
loaded stays shared with the children: :func:`~lychgate.gateway.collector.freeze_heap`).
The child runs the gateway (one worker, or a supervisor of N workers sharing the port).
*Companions* (``serve --demo``'s demo apps) are forked the same way, each into a process of
its own. The parent runs authz on its unix socket under uvloop and watches
the children: if any of them dies, authz stops too, the others are stopped, and serve exits
with the gateway's code (or, if that is 0, the first failing companion's). On Ctrl-C the
terminal sends SIGINT to the whole process group; everything stops in the order below, and
the parent reaps the children before it returns.

A stop drains the gateway first. Whatever the signal (SIGINT from the terminal, SIGTERM or
SIGHUP to the parent alone), the parent sends the gateway SIGTERM and keeps authz and the
companions serving until the gateway has exited: its drain (up to ``DRAIN_TIMEOUT``) may still
need authz (a sign-out, a callback's redemption, a login page's polls) and the apps behind it.
authz ends its pages' event streams at once, which would hold the drain (they never end; the
pages reconnect). Only then does authz stop, and after it the companions (with SIGTERM: they
ignore the terminal's SIGINT and SIGHUP). A second Ctrl-C cuts the gateway's drain short, so
everything stops within a second; a third interrupts the parent at once.
SIGHUP, a closed terminal, stops everything as SIGTERM does: the gateway stops on it by itself
(it reloads nothing here).

What can refuse a start is checked before anything happens: :func:`check_start` from the
settings alone (the listen addresses free, authz's socket path short enough and no other authz
on it), before ``serve`` creates a file or issues a one-time admin setup link; and
:func:`get_ready` again, with the deployment's files, before ``serve`` issues that link and
forks. A port in use is one error line, and no process starts. Every child ends when the
parent does, even one killed with SIGKILL (:func:`.workers.end_with_parent`), and the
gateway's workers end with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvloop

from lychgate.authz.server import (
    AuthzServer,
    check_socket_dir,
    check_socket_path_length,
    is_own_run_dir,
    prepare_socket_dir,
    stale_socket,
)
from lychgate.config import Settings
from lychgate.config.settings import parse_hostport
from lychgate.errors import LychgateError
from lychgate.gateway.collector import freeze_heap
from lychgate.gateway.http.fdlimit import raise_open_file_limit
from lychgate.gateway.http.stop import second_press
from lychgate.gateway.http.workers import end_with_parent
from lychgate.gateway.listeners import Addresses, check_listeners
from lychgate.gateway.plan import GatewayPlan, prepare
from lychgate.gateway.runner import DRAIN_TIMEOUT, run_gateway

log = logging.getLogger(__name__)
CHILD_POLL = 0.25
# How long after a stop authz waits for the gateway to drain and exit before it stops anyway.
GATEWAY_STOP_WAIT = DRAIN_TIMEOUT + 5.0


def run_authz(settings: Settings) -> int:
    """authz alone, in the foreground (uvicorn handles SIGINT/SIGTERM)."""
    raise_open_file_limit()  # a login page's event stream holds a connection while it waits
    prepare_socket_dir(settings)
    server = AuthzServer(settings)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(server.run())
    return 0


@dataclass(frozen=True, slots=True)
class Companion:
    """A process ``serve`` runs next to the gateway (the demo apps, for one).

    ``run`` is called in a forked child, before any loop exists there; it runs in the
    foreground until SIGTERM and returns an exit code. It inherits SIGINT and SIGHUP ignored:
    the parent stops it once the gateway in front of it has drained.
    """

    name: str
    run: Callable[[], int]


def check_start(settings: Settings) -> None:
    """Refuse a ``serve`` that would fail to start, touching nothing: call it before creating
    any file or issuing a one-time link.

    Checked once everything was created, a port in use or a second ``serve`` on the same
    deployment left a new deployment's files behind, and a fresh admin setup link (valid for
    24 hours) printed for a start that never happened. The addresses the gateway listens on
    must be free and distinct (authz's own, on TCP, among them), and authz's socket short
    enough for the kernel and not in use by another authz. :func:`get_ready` checks again,
    with the files, just before the start.
    """
    authz = settings.effective_authz_listen
    tcp = not authz.startswith("unix:")
    also = [("authz_listen", *parse_hostport(authz))] if tcp else []
    check_listeners(Addresses.of(settings), settings.workers, also)
    if authz.startswith("unix:"):
        _check_authz_socket(Path(authz.removeprefix("unix:")), settings)


def _check_authz_socket(path: Path, settings: Settings) -> None:
    """The refusals of :func:`~lychgate.authz.server.prepare_socket_dir` that need no file of
    the deployment, made without its side effects (it creates the run directory and removes a
    stale socket): a path too long to bind, a directory named in ``authz_listen`` that is
    missing its parent or that others may write to, a file that is no socket, another authz
    on it. The deployment's own run directory is checked by :func:`get_ready`, once ``serve``
    has made the data directory it lives in."""
    check_socket_path_length(path)
    if not is_own_run_dir(path.parent, settings):
        check_socket_dir(path.parent, own=False)
    stale_socket(path)


@dataclass(frozen=True, slots=True)
class Ready:
    """A start that :func:`get_ready` found will go ahead: the settings and the gateway's plan."""

    settings: Settings
    plan: GatewayPlan


def get_ready(settings: Settings) -> Ready:
    """Everything :func:`serve_all` needs before it forks, and every refusal left: call it
    once the deployment's files exist, before issuing anything that only a start should
    (the admin setup link), as a refusal after that would leave the link behind.

    Blocking reads (the gateway's plan) before the fork and before any loop; the listen
    addresses again (a port taken since :func:`check_start`: one error line, nothing started);
    authz's socket directory, made ready.
    """
    plan = prepare(settings)
    check_listeners(plan, settings.workers)
    raise_open_file_limit()  # for authz here, and inherited by every child
    prepare_socket_dir(settings)
    return Ready(settings, plan)


def serve_all(ready: Ready, *, companions: Sequence[Companion] = ()) -> int:
    """authz, the gateway and ``companions`` together. Returns the exit code."""
    settings, plan = ready.settings, ready.plan
    gateway = Companion("gateway", lambda: run_gateway(plan, workers=settings.workers))
    children: dict[int, str] = {}  # pid -> name, of the children still running
    # What serve loaded and made so far (authz's modules, the store's, the demo's) is shared
    # with every child only while no collection walks it, on either side of the fork.
    freeze_heap()
    try:
        for child in (gateway, *companions):
            children[_fork(child, companion=child is not gateway)] = child.name
    except BaseException:
        _stop_children(children)
        raise
    gateway_pid = next(iter(children))
    server = AuthzServer(settings, own_signals=False)

    def begin_stop() -> None:
        _terminate(gateway_pid)
        server.end_browser_streams()  # the drain would wait for them: they never end

    def hurry() -> None:
        log.info("second Ctrl-C: the gateway stops at once, cutting what is under way")
        if gateway_pid in children:  # not reaped yet: its pid is still its own
            with contextlib.suppress(ProcessLookupError):
                os.kill(gateway_pid, signal.SIGINT)

    stopper = _Stopper(begin_stop, hurry)
    codes: dict[str, int] = {}

    async def stop_authz() -> None:
        # authz may still be opening its store, with no server to stop yet.
        while not server.stopping:
            server.stop()
            await asyncio.sleep(CHILD_POLL)

    async def watch_children() -> None:
        loop = asyncio.get_running_loop()
        give_up: float | None = None  # when to stop authz though the gateway still drains
        while True:
            await asyncio.sleep(CHILD_POLL)
            for pid, name in list(children.items()):
                done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
                if done:
                    del children[pid]
                    codes[name] = os.waitstatus_to_exitcode(status)
                    if not stopper.requested:
                        log.error("the %s exited (code %d); stopping", name, codes[name])
                    await stop_authz()
                    return
            if stopper.requested and give_up is None:
                give_up = loop.time() + GATEWAY_STOP_WAIT
                log.info("stopping: the gateway drains first, then authz")
            if give_up is not None and loop.time() >= give_up:
                log.warning(
                    "the gateway has not stopped after %g s; stopping authz", GATEWAY_STOP_WAIT
                )
                await stop_authz()
                return

    async def main() -> None:
        watcher = asyncio.create_task(watch_children())
        try:
            await server.run()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    log.info("serving %s (%s)", settings.public_url, _describe(children))
    try:
        with stopper.installed():
            uvloop.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        codes.update(_stop_children(children))
    # The gateway's code first, as before companions existed; then any companion's failure.
    ordered = [codes.get(child.name, 0) for child in (gateway, *companions)]
    return next((code for code in ordered if code), 0)


class _Stopper:
    """The parent's SIGINT, SIGTERM and SIGHUP handler for the whole of ``serve``.

    The first of them records the request and calls ``on_stop`` (which tells the gateway to
    drain); the parent's watcher then stops authz once the gateway has gone. uvicorn's own
    handlers are off (authz would stop at once, under the gateway's drain). A second Ctrl-C
    (:func:`.stop.second_press`) calls ``on_hurry``, which passes it on to the gateway: its
    drain is cut short, it exits, and authz stops after it. A third interrupts the parent at
    once: it then stops every child and reaps it.
    """

    def __init__(self, on_stop: Callable[[], None], on_hurry: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.on_hurry = on_hurry
        self.first: float | None = None
        self.hurried = False

    @property
    def requested(self) -> bool:
        return self.first is not None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if not second_press(signum, self.first, now):
            if self.first is None:
                self.first = now
                self.on_stop()
            return
        if self.hurried:
            raise KeyboardInterrupt
        self.hurried = True
        self.on_hurry()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _fork(child: Companion, *, companion: bool) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        # The hangup goes to the parent too, which stops every child with SIGTERM; a child
        # that handles it (the gateway, as a stop) installs its own handler. A companion
        # ignores the terminal's Ctrl-C as well: the gateway may still be draining into it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if companion:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        end_with_parent(parent)
        code = 1
        try:
            code = child.run()
        except LychgateError as exc:
            log.error("the %s failed: %s", child.name, exc)  # an error, not a bug: no traceback
        except BaseException:
            log.exception("the %s failed", child.name)
        finally:
            os._exit(code)
    return pid


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _describe(children: dict[int, str]) -> str:
    return ", ".join(f"{name} pid {pid}" for pid, name in children.items())


def _stop_children(children: dict[int, str]) -> dict[str, int]:
    """SIGTERM every child still running and reap it; their exit codes by name."""
    for pid in children:
        _terminate(pid)
    codes = {name: _reap(pid) for pid, name in children.items()}
    children.clear()
    return codes


def _reap(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 0
    code = os.waitstatus_to_exitcode(status)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
