"""The browser-binding cookie: only the browser that started a login request may follow it.

``lychgate_login=<secret>`` (``__Host-lychgate_login`` on https; docs/sign-in-protocol.md,
"Actors and cookies"): 256 random bits,
set when the request is made; the store keeps only its SHA-256 as ``secret_hash``. Reading the
request's status, its events and finishing it all need the cookie, compared in constant time
(SECURITY.md items 6 and 7). A request without it, with another browser's cookie, or that does
not exist answers the same 404, so ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from fastapi import Request, Response

from lychgate.authz.context import AuthzContext
from lychgate.authz.web import login_cookie, secure_cookies
from lychgate.domain import LoginRequest
from lychgate.errors import NotFound
from lychgate.gateway.cookies import cookie_values
from lychgate.ids import LoginRequestId, is_id_text

SECRET_BYTES: Final = 32
#: What our ids look like (``ids.new_id``); anything else is not looked up at all, so bytes a
#: database refuses (NUL in PostgreSQL text) become a 404 like any unknown id.
#: More values than this under the cookie's name are not even looked at.
MAX_VALUES: Final = 4


def new_secret() -> tuple[str, bytes]:
    """A fresh binding secret and the hash the store keeps."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return secret, secret_hash(secret)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def presented_secrets(request: Request, ctx: AuthzContext) -> list[str]:
    """Every value of the binding cookie the browser sent (a tossed duplicate included)."""
    name, _ = login_cookie(ctx)
    values = cookie_values(request.headers.getlist("cookie"), name)
    return values[:MAX_VALUES] if len(values) <= MAX_VALUES else []


def is_bound(login: LoginRequest, presented: list[str]) -> bool:
    """True if one of the presented secrets hashes to the request's ``secret_hash``."""
    found = False
    for value in presented:
        # Every value is compared, so the time taken does not depend on which one matched.
        found |= hmac.compare_digest(secret_hash(value), login.secret_hash)
    return found


async def bound_login(ctx: AuthzContext, request: Request, login_id: str) -> LoginRequest:
    """The login request ``login_id`` if this browser started it; NotFound otherwise."""
    presented = presented_secrets(request, ctx)
    if not presented or not is_id_text(login_id):
        raise NotFound("no such login request", field="login_id")
    login = await ctx.store.login_requests.get(LoginRequestId(login_id))
    if not is_bound(login, presented):
        raise NotFound("no such login request", field="login_id")
    return login


def set_binding_cookie(response: Response, ctx: AuthzContext, secret: str) -> None:
    name, path = login_cookie(ctx)
    response.set_cookie(
        name,
        secret,
        max_age=ctx.settings.login_request_ttl,
        path=path,
        secure=secure_cookies(ctx),
        httponly=True,
        samesite="lax",
    )


def clear_binding_cookie(response: Response, ctx: AuthzContext) -> None:
    name, path = login_cookie(ctx)
    response.delete_cookie(
        name, path=path, secure=secure_cookies(ctx), httponly=True, samesite="lax"
    )
