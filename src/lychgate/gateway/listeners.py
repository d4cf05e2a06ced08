"""The gateway's own listen addresses must differ from each other.

Asked about each address alone, the OS finds them all free: the second of two listeners on
one address (``metrics_listen`` on the ``listen`` port, or worker N's metrics port, which is
``metrics_listen`` plus N) then failed to bind, with a traceback, in a worker already started.
:func:`check_distinct` finds such a clash before anything binds, as one configuration error
naming both settings.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from lychgate.config import Settings
from lychgate.config.settings import parse_hostport
from lychgate.errors import ConfigError
from lychgate.gateway.http.workers import check_free
from lychgate.tls.hosts import is_loopback_host

log = logging.getLogger(__name__)

MAX_PORT = 65535


class Listening(Protocol):
    """Where a gateway listens (its plan, :class:`~lychgate.gateway.plan.GatewayPlan`)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def metrics(self) -> tuple[str, int] | None: ...
    @property
    def redirect(self) -> tuple[str, int] | None: ...


@dataclass(frozen=True, slots=True)
class Addresses:
    """Where a gateway listens, read from its settings alone (a :class:`Listening`): what its
    plan holds, and what ``serve`` checks before the files the plan reads exist."""

    host: str
    port: int
    metrics: tuple[str, int] | None
    redirect: tuple[str, int] | None

    @classmethod
    def of(cls, settings: Settings, *, listen: str | None = None) -> Addresses:
        """``listen``: in place of the setting (``lychgate gateway --listen``)."""
        metrics, redirect = settings.metrics_listen, settings.http_redirect_listen
        return cls(
            *parse_hostport(listen or settings.listen),
            metrics=parse_hostport(metrics) if metrics else None,
            redirect=parse_hostport(redirect) if redirect else None,
        )


def check_distinct(
    wanted: list[tuple[str, str, int]],
    resolve: Callable[[str], Sequence[str]] = lambda host: (host,),
) -> None:
    """Raise a one-line :class:`ConfigError` naming both settings when two of ``wanted``
    (from :func:`listen_addresses`) are the same address.

    Asking the OS about each address alone finds them all free; the second listener would then
    fail to bind, with a traceback, in a worker already started. The same port on a wildcard
    host clashes with the hosts it takes (:func:`_takes`). Port 0 (any free port) never
    clashes. Hosts are compared as ``resolve`` gives their addresses (as written by default,
    so this is pure: :func:`check_listeners` looks names up), IP addresses in their canonical
    form.
    """
    seen: list[tuple[str, set[str], str, int]] = []  # setting, canonical hosts, host, port
    for what, host, port in wanted:
        names = {_canonical(address) for address in resolve(host)}
        for other, other_names, other_host, other_port in seen:
            if port == other_port != 0 and any(
                name == other_name or _takes(name, other_name) or _takes(other_name, name)
                for name in names
                for other_name in other_names
            ):
                shown, other_shown = _shown(host, port), _shown(other_host, port)
                raise ConfigError(f"{shown} clashes with {other} ({other_shown})", field=what)
        seen.append((what, names, host, port))


def resolve_host(host: str) -> Sequence[str]:
    """The addresses a listen host name stands for (``localhost``: 127.0.0.1 and ::1), and the
    name itself; only the name when it does not resolve (binding will say why). Blocks."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return (host,)
    return (host, *dict.fromkeys(str(info[4][0]) for info in found))


def _canonical(host: str) -> str:
    """An IP address in its canonical form (``::0`` is ``::``); a name in lower case."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _takes(wild: str, other: str) -> bool:
    """Whether a listener on ``wild`` takes the port from one on ``other``: a wildcard takes
    it from the addresses of its own family, and from names (which may be either); an empty
    host from all. The gateway's IPv6 sockets are IPv6-only (asyncio sets ``IPV6_V6ONLY``), so
    ``[::]:P`` and ``127.0.0.1:P`` bind side by side, as ``0.0.0.0:P`` and ``[::1]:P`` do."""
    try:
        address = ipaddress.ip_address(wild)
    except ValueError:
        return not wild
    if not address.is_unspecified:
        return False
    try:
        return ipaddress.ip_address(other).version == address.version
    except ValueError:
        return True


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_addresses(plan: Listening, workers: int) -> list[tuple[str, str, int]]:
    """Every ``(setting, host, port)`` the gateway would listen on: ``listen``, each worker's
    metrics port (``metrics_listen`` plus the worker's number), the redirect listener.

    A :class:`ConfigError` when the last worker's metrics port is past 65535: getaddrinfo
    wraps port 65536 to 0, any free port, where no scraper would look.
    """
    wanted = [("listen", plan.host, plan.port)]
    if plan.metrics is not None:
        host, port = plan.metrics
        if port + workers - 1 > MAX_PORT:
            others = workers - 1
            raise ConfigError(
                f"port {port} + {others} worker{'s' if others > 1 else ''} is past {MAX_PORT} "
                f"(worker k serves metrics on port + k): with {workers} workers, use a port "
                f"up to {MAX_PORT - others}",
                field="metrics_listen",
            )
        for worker in range(workers):
            what = f"metrics_listen (worker {worker})" if worker else "metrics_listen"
            wanted.append((what, host, port + worker))
    if plan.redirect is not None:
        wanted.append(("http_redirect_listen", *plan.redirect))
    return wanted


def check_listeners(
    plan: Listening, workers: int, also: Sequence[tuple[str, str, int]] = ()
) -> None:
    """Raise a one-line error naming the setting when an address the gateway would listen on
    is taken: ``listen``, each worker's metrics port, the redirect listener, and ``also``
    (authz's, under ``serve``); or when two of them are the same address
    (:func:`check_distinct`).

    Called before any worker starts: a worker that fails to bind can only log a traceback, and
    one that binds with SO_REUSEPORT joins a port that another gateway serves without an error.
    """
    wanted = [*listen_addresses(plan, workers), *also]
    check_distinct(wanted, resolve_host)
    for what, host, port in wanted:
        check_free(host, port, what)


def warn_about_listeners(settings: Settings, host: str, port: int) -> None:
    """Warn about listen settings that start but cannot work: the public URL on this machine
    at another port than ``port`` (:func:`_warn_unreachable`), and a redirect listener on a
    plain-http deployment, which sends browsers to http again."""
    _warn_unreachable(settings, host, port)
    if settings.http_redirect_listen and not settings.is_https:
        log.warning(
            "http_redirect_listen is set but the public URL %s is plain http: the listener "
            "sends browsers to http again; unset it, or serve https",
            settings.public_url,
        )


def _warn_unreachable(settings: Settings, host: str, port: int) -> None:
    """Warn when the public URL names this machine on another port than the gateway's
    (``init --public-url https://localhost:8443`` with ``listen`` left at its default, 8080):
    unless something here forwards that port (a container's port mapping, a local proxy),
    browsers will not reach it. Not behind a load balancer (``proxy_protocol``): it forwards."""
    if settings.proxy_protocol:
        return
    url = urlsplit(settings.public_url)
    public_port = url.port or (443 if url.scheme == "https" else 80)
    if url.hostname and is_loopback_host(url.hostname) and public_port != port != 0:
        shown = f"[{host}]" if ":" in host else host
        log.warning(
            "the public URL %s is on this machine at port %d, but the gateway listens on "
            "port %d: unless something here forwards port %d to it, browsers will not reach "
            'it. Serve on port %d (listen = "%s:%d", or --listen), or make public_url name '
            "port %d (in lychgate.toml)",
            settings.public_url,
            public_port,
            port,
            public_port,
            public_port,
            shown,
            public_port,
            port,
        )
