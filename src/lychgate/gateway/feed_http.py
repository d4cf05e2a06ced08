"""How the gateway reaches authz's internal API: over its unix socket or TCP, with the secret.

authz listens on ``unix:<data dir>/run/authz.sock`` by default, or on ``HOST:PORT``
(``Settings.effective_authz_listen``). The internal endpoints (the config feed, code redemption,
session revocation) need ``Authorization: Bearer <internal token>``; the gateway refuses to
forward any client request under ``/.lychgate/internal/`` (see
:mod:`lychgate.gateway.routing`), so only gateways ever reach them.
"""

from __future__ import annotations

from typing import Final

import httpx

from lychgate.config.settings import parse_hostport
from lychgate.errors import ConfigError
from lychgate.secret import Secret

FEED_PATH: Final = "/.lychgate/internal/feed"
REDEEM_PATH: Final = "/.lychgate/internal/handoff"
REVOKE_PATH: Final = "/.lychgate/internal/revoke"
# The Host we send over a unix socket; authz does not route on it.
_UNIX_BASE: Final = "http://authz.internal"


def authz_base(listen: str) -> str:
    """``unix:/path``, ``http(s)://host:port`` or ``HOST:PORT`` as a base for authz's API.

    Returns ``unix:/path`` or an ``http(s)://`` URL without a trailing slash. Raises
    :class:`~lychgate.errors.ConfigError` naming ``authz_listen``.
    """
    if listen.startswith("unix:"):
        if not listen.startswith("unix:/"):
            raise ConfigError("unix socket path must be absolute", field="authz_listen")
        return listen
    if listen.startswith(("http://", "https://")):
        return listen.rstrip("/")
    try:
        host, port = parse_hostport(listen)
    except ValueError as exc:
        raise ConfigError(str(exc), field="authz_listen") from None
    name = f"[{host}]" if ":" in host else host
    return f"http://{name}:{port}"


def authz_client(
    base: str,
    secret: Secret,
    *,
    timeout: float | httpx.Timeout,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncClient:
    """An httpx client for authz's internal API at ``base`` (see :func:`authz_base`).

    Redirects are not followed and no proxy or ``.netrc`` from the environment is used: this
    client only ever talks to our own authz. Without TLS (a unix socket or ``http://``) no CA
    bundle is loaded, so building one does no file I/O and is safe on the event loop.
    ``limits``: the connection pool's (httpx's default without).
    """
    limits = limits if limits is not None else httpx.Limits()
    headers = {"authorization": f"Bearer {secret.reveal()}"}
    tls = base.startswith("https://")
    uds = base.removeprefix("unix:") if base.startswith("unix:") else None
    transport = httpx.AsyncHTTPTransport(uds=uds, verify=tls, trust_env=False, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        base_url=_UNIX_BASE if uds is not None else base,
        headers=headers,
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
    )
