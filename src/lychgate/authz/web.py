"""Request helpers shared by authz's browser and device routes.

authz sits behind the gateway, which strips whatever the client sent in ``X-Forwarded-*`` (it
keeps those headers only from configured trusted proxies) and sets them itself, appending the
peer it saw to the chain. The client is the right-most ``X-Forwarded-For`` entry that is not one
of the ``trusted_proxies``: entries further left were written by whoever reached the first
trusted proxy, that is by the client itself, so they never choose a rate-limit key.
``X-Forwarded-Host``/``-Proto`` name the origin the browser used.

authz believes those headers only from a gateway (:func:`from_gateway`):

* over its unix socket (the default ``authz_listen``) always: only the gateway can connect
  there. uvicorn reports a unix-socket peer as ``client = None``; a peer that is not an IP
  address counts as a unix-socket peer too, since a TCP peer always has one;
* over TCP only from a peer inside ``authz_trusted_gateways`` (loopback by default);
* from anyone else never: the client is the TCP peer itself and the origin is ``public_url``.
  Otherwise whoever reaches authz's port could pick the IP that rate limits count against.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request, Response

from lychgate.authz.context import AuthzContext
from lychgate.gateway import cookies
from lychgate.gateway.trusted_proxies import chain_client, is_trusted


def from_gateway(request: Request, ctx: AuthzContext) -> bool:
    """True if this request's ``X-Forwarded-*`` headers are to be believed (module docstring):
    it came over the unix socket, or from a TCP peer inside ``authz_trusted_gateways``."""
    peer = request.client.host if request.client else ""
    try:
        ipaddress.ip_address(peer)
    except ValueError:
        return True  # a unix-socket peer: only the gateway can connect there
    # is_trusted also unmaps a dual-stack listener's ::ffff:a.b.c.d view of an IPv4 peer.
    return is_trusted(peer, ctx.settings.authz_trusted_gateways)


def client_ip(request: Request) -> str:
    """The client's IP: from a gateway's ``X-Forwarded-For`` (module docstring), else the peer."""
    ctx: AuthzContext = request.app.state.ctx
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and from_gateway(request, ctx):
        return chain_client(forwarded, ctx.settings.trusted_proxies)
    return request.client.host if request.client else ""


def top_level_navigation(request: Request) -> bool:
    """Not a ``fetch()``, an ``<iframe>`` or an ``<img>``, by the Fetch Metadata a browser
    sends (and no page can forge); a client that sends none (a CLI) passes."""
    mode, dest = request.headers.get("sec-fetch-mode"), request.headers.get("sec-fetch-dest")
    return mode in (None, "navigate") and dest in (None, "document")


def not_a_navigation() -> Response:
    """The answer to a page asked for by other than a top-level navigation (a plain 403)."""
    headers = {"cache-control": "no-store"}
    return Response("forbidden\n", status_code=403, media_type="text/plain", headers=headers)


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]


def request_origin(request: Request, ctx: AuthzContext) -> str:
    """The origin the browser used (as a gateway reports it), else the public URL."""
    host = request.headers.get("x-forwarded-host")
    proto = request.headers.get("x-forwarded-proto")
    if host and proto in ("http", "https") and from_gateway(request, ctx):
        return f"{proto}://{host}"
    return ctx.settings.public_url


def secure_cookies(ctx: AuthzContext) -> bool:
    return ctx.settings.is_https


def session_cookie_name(ctx: AuthzContext) -> str:
    """The auth-session cookie on the portal host (``__Host-`` prefixed on https); the
    gateway's logout clears it too, so both take the name from one place."""
    return cookies.session_cookie_name(ctx.settings.is_https)


def login_cookie(ctx: AuthzContext) -> tuple[str, str]:
    """The browser-binding cookie's name and path (``__Host-`` prefixed on https)."""
    return cookies.login_cookie(ctx.settings.is_https)
