"""Running the demo apps: uvicorn on the unix sockets the gateway was told about.

Theory of operation
-------------------
:func:`prepare_demo` does the blocking work (the run directory, stale sockets, the internal
CA for an https deployment) before any event loop exists, and returns a :class:`DemoPlan`.
:func:`run_demo_apps` is what ``serve --demo`` runs in a process of its own, forked next to
the gateway (see :mod:`lychgate.supervise`): one uvloop loop serving both apps until SIGTERM.
:func:`serve_demo_apps` is the loop's body, also used by tests with their own stop event.

The apps verify assertions the way an app on another machine would: they fetch the JWKS from
the deployment's public URL, through the gateway. uvicorn's own signal handling is switched
off: two servers in one loop would fight over the handlers, so the process owns the signals
and tells both servers to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import httpx
import uvicorn
import uvloop
from starlette.types import ASGIApp

from lychgate.authz.server import check_socket_path_length
from lychgate.config import Settings
from lychgate.demo.apps import CHAT, DEMO_APPS, WHOAMI
from lychgate.demo.chat import create_chat
from lychgate.demo.verify import AssertionVerifier, JwksCache, jwks_url, utc_now
from lychgate.demo.whoami import create_whoami
from lychgate.deployment.layout import Layout
from lychgate.files import DIR_MODE
from lychgate.unix_sockets import remove_socket

log = logging.getLogger(__name__)

MAX_FRAME_BYTES: Final = 4096  # a chat message is at most 500 characters (4 bytes each in UTF-8)
JWKS_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What the demo process needs, resolved before its loop starts."""

    issuer: str  # the public URL: the assertions' iss, and where the JWKS lives
    jwks_url: str
    sockets: Mapping[str, Path]  # slug -> unix socket path
    tls: ssl.SSLContext | None  # trusts the internal CA; None: the system's CAs


def demo_sockets(settings: Settings) -> dict[str, Path]:
    """Where the demo apps listen, by slug: in the deployment's run directory."""
    run_dir = Layout(settings.data_dir).run_dir
    return {demo.slug: demo.socket(run_dir) for demo in DEMO_APPS}


def check_demo_sockets(settings: Settings) -> None:
    """Refuse a data directory too long for the demo apps' sockets, whose names are longer
    than authz's own: ``serve --demo`` calls it before it creates anything (touching
    nothing), as the apps would otherwise fail to bind once everything else had started."""
    for path in demo_sockets(settings).values():
        check_socket_path_length(path, field="data_dir", way_out="use a shorter data directory")


def prepare_demo(settings: Settings) -> DemoPlan:
    """Create the run directory, remove stale demo sockets, load the CA (blocking)."""
    layout = Layout(settings.data_dir)
    sockets = demo_sockets(settings)
    check_demo_sockets(settings)
    layout.run_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for path in sockets.values():
        if path.is_socket():
            path.unlink()
    tls = None
    if settings.is_https and settings.tls_cert is None:
        # The internal CA (lychgate init): the apps trust it as a device would after
        # `lychgate ca export`.
        tls = ssl.create_default_context(cafile=layout.tls_dir / "ca.pem")
    return DemoPlan(settings.public_url, jwks_url(settings.public_url), sockets, tls)


class _Server(uvicorn.Server):
    """uvicorn that leaves the signals alone (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(app: ASGIApp, socket: Path) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        uds=str(socket),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-* are shown, never believed
        ws_max_size=MAX_FRAME_BYTES,
        timeout_graceful_shutdown=3,
    )


async def serve_demo_apps(
    plan: DemoPlan,
    stop: asyncio.Event,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Serve whoami and chat on their sockets until ``stop`` is set (or a server ends).

    ``transport`` and ``clock`` are for tests (a fake JWKS endpoint, a fixed time).
    """
    async with httpx.AsyncClient(
        verify=plan.tls or True, timeout=JWKS_TIMEOUT, transport=transport
    ) as http:
        jwks = JwksCache(plan.jwks_url, http)

        def verifier(slug: str) -> AssertionVerifier:
            return AssertionVerifier(jwks, issuer=plan.issuer, audience=slug, clock=clock)

        apps: dict[str, ASGIApp] = {
            WHOAMI.slug: create_whoami(verifier(WHOAMI.slug)),
            CHAT.slug: create_chat(verifier(CHAT.slug)),
        }
        servers = [_Server(_config(apps[slug], path)) for slug, path in plan.sockets.items()]
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(s.serve()) for s in servers]
            stopped = group.create_task(stop.wait())
            log.info("demo apps on %s", ", ".join(f"unix:{p}" for p in plan.sockets.values()))
            await asyncio.wait([*running, stopped], return_when=asyncio.FIRST_COMPLETED)
            for server in servers:
                server.should_exit = True
            stopped.cancel()
        for server, path in zip(servers, plan.sockets.values(), strict=True):
            if server.started:  # it listened there: the socket is its own
                await asyncio.to_thread(remove_socket, path)


def run_demo_apps(plan: DemoPlan) -> int:
    """The demo process: serve until SIGTERM. Returns the exit code.

    SIGINT stays as ``serve`` left it (ignored): on Ctrl-C the apps serve on while the gateway
    drains into them, and ``serve`` stops them after it.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await serve_demo_apps(plan, stop)

    uvloop.run(main())
    return 0
