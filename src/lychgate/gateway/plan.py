"""The gateway's plan: everything a worker needs, resolved before any event loop runs.

:func:`prepare` does the blocking start-up work (reading the secrets file and the TLS
certificates) and derives from the settings what the workers use as is: the engine's limits,
the names a renewed certificate must keep, the HSTS line, the listen addresses. Its
:class:`GatewayPlan` is what :mod:`lychgate.gateway.runner` runs.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from lychgate.config import Settings
from lychgate.deployment.layout import Layout
from lychgate.deployment.secrets import load_secrets
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.tls import CertPair, ServerCertificates, client_context
from lychgate.gateway.listeners import Addresses, warn_about_listeners
from lychgate.secret import Secret
from lychgate.tls.files import TlsPaths, renew_server_cert
from lychgate.tls.hosts import hostnames_for, is_loopback_host

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """Everything a worker needs, resolved before the loop starts."""

    settings: Settings
    internal_token: Secret
    host: str
    port: int
    limits: Limits
    tls: ServerCertificates | None
    # Re-issues the certificate from the internal CA when due (lychgate.tls.files), when the
    # gateway serves the internal CA's certificate and the CA's key is on this machine.
    renew_tls: Callable[[datetime], bool] | None
    upstream_ssl: ssl.SSLContext
    metrics: tuple[str, int] | None
    redirect: tuple[str, int] | None
    hsts: bytes = b""  # the Strict-Transport-Security line of the https listener's answers


def engine_limits(settings: Settings) -> Limits:
    """The engine's limits from the configured ones (the field names match)."""
    c = settings.limits
    return Limits(
        max_header_bytes=c.max_header_bytes,
        max_headers=c.max_headers,
        max_body_bytes=c.max_body_bytes,
        header_timeout=c.header_timeout,
        idle_timeout=c.idle_timeout,
        tunnel_idle_timeout=c.tunnel_idle_timeout,
        max_connections_per_client=c.max_connections_per_client,
    )


def prepare(settings: Settings, *, listen: str | None = None) -> GatewayPlan:
    """Read secrets and TLS material (blocking: call before the loop)."""
    layout = Layout(settings.data_dir)
    where = Addresses.of(settings, listen=listen)
    tls: ServerCertificates | None = None
    renew_tls: Callable[[datetime], bool] | None = None
    # What a renewed certificate must still name: the public host, and in subdomains mode what
    # the apps' hosts need of the certificate in use (its wildcard, the app domain).
    hosts = (settings.public_host,)
    also = app_names(settings.app_domain) if settings.routing == "subdomains" else ()
    if settings.tls_cert is not None and settings.tls_key is not None:
        pair = CertPair(settings.tls_cert, settings.tls_key)
        tls = ServerCertificates(pair, hosts=hosts, also=also)
    elif settings.is_https:
        paths = TlsPaths.in_dir(layout.tls_dir)
        pair = CertPair(paths.server_cert, paths.server_key)
        tls = ServerCertificates(pair, hosts=hosts, also=also)
        if paths.ca_key.exists():
            names = hostnames_for(settings.public_url, settings.routing, domain=settings.domain)
            renew_tls = partial(renew_server_cert, layout.tls_dir, names)
        else:
            log.info(
                "the internal CA's key is not on this machine: renew %s where it is "
                "(lychgate init); this gateway reloads the file when it changes",
                paths.server_cert,
            )
    warn_about_listeners(settings, where.host, where.port)
    return GatewayPlan(
        settings=settings,
        internal_token=load_secrets(layout.secrets_file).internal_token,
        host=where.host,
        port=where.port,
        limits=engine_limits(settings),
        tls=tls,
        renew_tls=renew_tls,
        upstream_ssl=client_context(),
        metrics=where.metrics,
        redirect=where.redirect,
        hsts=hsts_field(settings),
    )


def app_names(domain: str) -> tuple[str, str]:
    """The app domain, and a name its wildcard covers (any one label stands for every app)."""
    return domain, f"any-app.{domain}"


def hsts_field(settings: Settings) -> bytes:
    """The ``Strict-Transport-Security`` line the https listener adds to its answers, or
    nothing: on plain http, with ``hsts_max_age = 0``, and for a loopback or ``*.localhost``
    public host or app domain (a browser would then hold every port of that name to https,
    other local servers included)."""
    if not settings.is_https or not settings.hsts_max_age:
        return b""
    hosts = [settings.public_host]
    if settings.routing == "subdomains":
        hosts.append(settings.app_domain)
    if any(is_loopback_host(host.rstrip(".")) for host in hosts):
        return b""
    return b"strict-transport-security: max-age=%d\r\n" % settings.hsts_max_age
