"""Running authz: open the store and the bus, then serve the ASGI app with uvicorn.

authz listens on a unix socket in ``<data dir>/run/`` by default (``authz_listen``): only
processes of the same user reach it, because the run directory is 0700. Gateways connect there
for the feed and for handoff redemption and forward ``/.lychgate/*`` browser traffic to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn

from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.config import Settings
from lychgate.config.settings import parse_hostport
from lychgate.deployment.init import check_secrets_fingerprint
from lychgate.deployment.layout import Layout
from lychgate.deployment.secrets import load_secrets
from lychgate.errors import ConfigError
from lychgate.events import open_bus
from lychgate.files import DIR_MODE
from lychgate.store import Store, open_store
from lychgate.unix_sockets import remove_socket, socket_path_problem

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def authz_context(settings: Settings) -> AsyncIterator[AuthzContext]:
    """Open what authz owns (store, bus, secrets) and close it on exit.

    A secrets.json other than the one the database records is refused (a ConfigError), before
    anything is served: see :func:`~lychgate.deployment.init.check_secrets_fingerprint`.
    """
    layout = Layout(settings.data_dir)
    secrets = await asyncio.to_thread(load_secrets, layout.secrets_file)
    url = settings.effective_database_url.reveal()
    store = await open_store(url)
    try:
        if await check_secrets_fingerprint(store, secrets, layout.secrets_file):
            log.info(
                "recorded the fingerprint of %s in %s: every node of this deployment must "
                "share this file",
                layout.secrets_file,
                store.url,
            )
        await warn_without_signing_key(store, settings)
        bus = await open_bus(url)
        try:
            yield AuthzContext(settings=settings, store=store, bus=bus, secrets=secrets)
        finally:
            await bus.close()
    finally:
        await store.close()


async def warn_without_signing_key(store: Store, settings: Settings) -> bool:
    """Warn, naming what to run, when the store holds no signing key; returns whether it did.

    authz starts all the same (its sign-in answers 503 until a key exists, and ``serve`` in a
    new directory starts this way), but the likely cause is a ``database_url`` that names an
    empty database, which authz has just migrated: a new node's typo, or init never run.
    """
    if await store.signing_keys.list():
        return False
    log.warning(
        "the database %s holds no signing key, so nobody can sign in (authz answers 503) "
        "until it does: if this is a new deployment, run `lychgate init --dir %s`; if the "
        "deployment's database is another one, correct database_url",
        store.url,
        settings.data_dir,
    )
    return True


def uvicorn_config(settings: Settings, app: object) -> uvicorn.Config:
    """uvicorn settings for authz: our own logging, no server header, no proxy headers
    (the gateway in front of authz is the only client and sets what authz needs)."""
    listen = settings.effective_authz_listen
    common: dict[str, object] = {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "date_header": True,
        "proxy_headers": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
    }
    if listen.startswith("unix:"):
        return uvicorn.Config(app, uds=listen.removeprefix("unix:"), **common)  # type: ignore[arg-type]
    host, port = parse_hostport(listen)
    warn_about_gateway_trust(settings, host)
    return uvicorn.Config(app, host=host, port=port, **common)  # type: ignore[arg-type]


def warn_about_gateway_trust(settings: Settings, host: str) -> bool:
    """Warn when authz listens on TCP beyond loopback but believes only loopback gateways.

    Remote gateways would then not be believed: every browser would share its gateway's IP as
    the rate-limit key and subdomain pages would get the public URL's origin. Returns whether
    it warned (for tests).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        reachable = host != "localhost"  # a name: assume it resolves beyond loopback
    else:
        reachable = not address.is_loopback
    trusted = settings.authz_trusted_gateways
    if not reachable or any(not network.is_loopback for network in trusted):
        return False
    log.warning(
        "authz listens on %s but authz_trusted_gateways names only loopback: set it to the "
        "networks of your gateways, or their X-Forwarded-* headers are ignored",
        settings.effective_authz_listen,
    )
    return True


def prepare_socket_dir(settings: Settings) -> None:
    """Make the socket's directory ready and remove a stale socket (blocking; before the loop).

    A socket path longer than the kernel takes (:mod:`lychgate.unix_sockets`) is refused
    first, naming the path: uvicorn would fail to bind it only once everything else had
    started, with a traceback. The deployment's own run directory is created, or kept, 0700:
    only its owner may connect. A directory named in ``authz_listen`` is the operator's: it is
    created 0700 if missing but never changed (it may be shared, as ``/run`` is), and refused
    if others may write to it, where anyone could put their own socket in the gateway's way.
    Only the socket's own directory is ever created, never its parent: a mistyped ``--dir``
    must fail without leaving directories behind (``serve`` and ``init`` create the data
    directory themselves). Only a stale socket is removed from the socket's path: one that
    another authz still listens on is refused, and so is any other file.
    """
    listen = settings.effective_authz_listen
    if not listen.startswith("unix:"):
        return
    path = Path(listen.removeprefix("unix:"))
    check_socket_path_length(path)
    parent = path.parent
    own = is_own_run_dir(parent, settings)
    check_socket_dir(parent, own=own)
    try:
        if not parent.exists():
            parent.mkdir(mode=DIR_MODE)
        elif own:
            os.chmod(parent, DIR_MODE)
        if stale_socket(path):
            path.unlink()
    except OSError as exc:  # a data directory this user may not write to: one line, no trace
        raise ConfigError(
            f"cannot prepare authz's socket directory {parent}: {exc.strerror or exc}",
            field="authz_listen",
        ) from exc


def is_own_run_dir(directory: Path, settings: Settings) -> bool:
    """Whether ``directory`` is the deployment's own run directory (not one the operator
    named in ``authz_listen``)."""
    return directory == Layout(settings.data_dir).run_dir


def check_socket_dir(directory: Path, *, own: bool) -> None:
    """The refusals of :func:`prepare_socket_dir` about the socket's directory, changing
    nothing (a ConfigError): a missing parent, where only the directory itself would be
    created; an operator's directory that others may write to."""
    if not directory.exists():
        if not directory.parent.is_dir():
            raise _missing_parent(directory.parent, own=own)
    elif not own and directory.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{directory} may be written by other users: put authz's socket in a directory of "
            "its own",
            field="authz_listen",
        )


def stale_socket(path: Path) -> bool:
    """Whether a stale socket (its process gone) is at ``path``, to remove before binding;
    False when nothing is there. A ConfigError for any other file, and for a socket another
    authz listens on (a second ``serve`` on this deployment): unlinking it would cut that
    authz's gateways off from it, though it kept running. Changes nothing."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise ConfigError(
            f"{path} exists and is not a socket; not removing it", field="authz_listen"
        )
    if _answers(path):
        raise ConfigError(
            f"{path}: another authz is listening there; stop it first, or give this one "
            "another socket",
            field="authz_listen",
        )
    return True


def check_socket_path_length(
    path: Path,
    *,
    field: str = "authz_listen",
    way_out: str = 'use a shorter data directory, or set authz_listen = "unix:/short/path"',
) -> None:
    """Refuse a unix socket path the kernel cannot bind, with the way out (a ConfigError)."""
    problem = socket_path_problem(path)
    if problem is not None:
        raise ConfigError(f"{problem}: {way_out}", field=field)


def _missing_parent(missing: Path, *, own: bool) -> ConfigError:
    """The error for a socket directory whose parent is missing: for the deployment's own run
    directory, that is the data directory itself (a mistyped ``--dir``, or init never run)."""
    if own:
        return ConfigError(
            f"the deployment directory {missing} does not exist; check --dir, or run "
            f"`lychgate init --dir {missing}` first",
            field="data_dir",
        )
    return ConfigError(
        f"{missing} does not exist: create it, or put authz's socket in a directory that does",
        field="authz_listen",
    )


def _answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket at ``path``; a stale one
    (its process gone) refuses them."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # it exists and did not refuse (a full backlog, a timeout): live
        return True


class _Server(uvicorn.Server):
    """uvicorn that also ends authz's long-lived streams when asked to exit.

    uvicorn waits for open responses before it shuts down; the feed and other streams would
    hold it for the whole graceful timeout. Ending them first makes Ctrl-C prompt. Without
    ``own_signals`` it leaves the signals to its caller (``serve``, which stops authz only
    once the gateway has drained), and stops only through :meth:`AuthzServer.stop`.
    """

    def __init__(
        self, config: uvicorn.Config, on_exit: Callable[[], None], *, own_signals: bool
    ) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._own_signals = own_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self._own_signals:
            yield
            return
        with super().capture_signals():
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._on_exit()


class AuthzServer:
    """authz under uvicorn, stoppable from the outside (``serve`` supervises it).

    With ``own_signals`` (the default) SIGINT and SIGTERM stop it while it serves; without,
    only :meth:`stop` does, and the caller handles the signals.
    """

    def __init__(self, settings: Settings, *, own_signals: bool = True) -> None:
        self.settings = settings
        self._own_signals = own_signals
        self._server: uvicorn.Server | None = None
        self._end_streams: Callable[[], None] = lambda: None
        self._end_browser_streams: Callable[[], None] = lambda: None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    async def run(self) -> None:
        async with authz_context(self.settings) as ctx:
            app = create_app(ctx)
            loop = asyncio.get_running_loop()
            publisher = app.state.publisher

            def close_streams() -> None:
                publisher.close()  # the gateways' feed
                # Login and portal event streams follow the bus: closing it ends them.
                task = loop.create_task(ctx.bus.close(), name="close-bus")
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

            def end_streams() -> None:
                # Called from a signal handler: hand the work to the loop.
                loop.call_soon_threadsafe(close_streams)

            self._end_streams = end_streams

            def end_browser_streams() -> None:
                loop.call_soon_threadsafe(ctx.bus.end_subscriptions)

            self._end_browser_streams = end_browser_streams
            config = uvicorn_config(self.settings, app)
            server = _Server(config, end_streams, own_signals=self._own_signals)
            self._server = server
            try:
                await server.serve()
            finally:
                listen = self.settings.effective_authz_listen
                if server.started and listen.startswith("unix:"):  # ours: a live one refused us
                    await asyncio.to_thread(remove_socket, listen.removeprefix("unix:"))

    @property
    def stopping(self) -> bool:
        return self._server is not None and self._server.should_exit

    def end_browser_streams(self) -> None:
        """End the login and portal pages' event streams now, and go on serving (``serve``
        calls it when a stop begins: the gateway's drain would wait for streams that never
        end). The pages reconnect, to whatever serves next. Safe from a signal handler."""
        self._end_browser_streams()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._end_streams()
