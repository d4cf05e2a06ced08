"""Request helpers shared by authz's browser and device routes.

authz sits behind the gateway, which strips whatever the client sent in ``X-Forwarded-*`` (it
keeps those headers only from configured trusted proxies) and sets them itself. So the first
``X-Forwarded-For`` entry is the client, and ``X-Forwarded-Host``/``-Proto`` name the origin
the browser used.
"""

from __future__ import annotations

from fastapi import Request

from lychgate.authz.context import AuthzContext
from lychgate.gateway import cookies


def client_ip(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else ""


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]


def request_origin(request: Request, ctx: AuthzContext) -> str:
    """The origin the browser used (as the gateway saw it), else the public URL."""
    host = request.headers.get("x-forwarded-host")
    proto = request.headers.get("x-forwarded-proto")
    if host and proto in ("http", "https"):
        return f"{proto}://{host}"
    return ctx.settings.public_url


def secure_cookies(ctx: AuthzContext) -> bool:
    return ctx.settings.is_https


def session_cookie_name(ctx: AuthzContext) -> str:
    """The auth-session cookie on the portal host (``__Host-`` prefixed on https); the
    gateway's logout clears it too, so both take the name from one place."""
    return cookies.session_cookie_name(ctx.settings.is_https)


LOGIN_COOKIE = "lychgate_login"
