"""``lychgate serve``: one command, one process tree, a clean Ctrl-C.

Theory of operation
-------------------
The gateway is forked first, before any event loop exists in this process (forking a running
loop copies its state). The child runs the gateway (one worker, or a supervisor of N workers
sharing the port). The parent runs authz on its unix socket under uvloop and watches the
child: if the gateway dies, authz stops too, and serve exits with the gateway's code. On
Ctrl-C the terminal sends SIGINT to the whole process group; authz and the gateway each drain
and stop, and the parent reaps the child before it returns. SIGTERM to the parent alone is
forwarded to the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import uvloop

from lychgate.authz.server import AuthzServer, prepare_socket_dir
from lychgate.config import Settings
from lychgate.gateway.runner import prepare, run_gateway

log = logging.getLogger(__name__)
CHILD_POLL = 0.25


def run_authz(settings: Settings) -> int:
    """authz alone, in the foreground (uvicorn handles SIGINT/SIGTERM)."""
    prepare_socket_dir(settings)
    server = AuthzServer(settings)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(server.run())
    return 0


def serve_all(settings: Settings) -> int:
    """authz and the gateway together. Returns the exit code."""
    plan = prepare(settings)  # blocking reads before the fork and before any loop
    prepare_socket_dir(settings)
    pid = os.fork()
    if pid == 0:  # the gateway
        code = 1
        try:
            code = run_gateway(plan, workers=settings.workers)
        except BaseException:
            log.exception("gateway failed")
        finally:
            os._exit(code)
    server = AuthzServer(settings)
    gateway_code: list[int] = []

    async def watch_child() -> None:
        while True:
            await asyncio.sleep(CHILD_POLL)
            done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
            if done:
                code = os.waitstatus_to_exitcode(status)
                gateway_code.append(code)
                if not server.stopping:
                    log.error("the gateway exited (code %d); stopping authz", code)
                server.stop()
                return

    async def main() -> None:
        watcher = asyncio.create_task(watch_child())
        try:
            await server.run()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    log.info("serving %s (gateway pid %d)", settings.public_url, pid)
    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if not gateway_code:
            gateway_code.append(_stop_child(pid))
    return gateway_code[0]


def _stop_child(pid: int) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 0
    code = os.waitstatus_to_exitcode(status)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
