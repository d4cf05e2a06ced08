"""Cross-site request checks for the browser API (SECURITY.md items 7 and 10).

What we enforce, and why it is enough:

* **Every state-changing request** (POST, DELETE) and every SSE stream is refused (403) when it
  carries an ``Origin`` that is not the origin the browser used to reach authz, or a
  ``Sec-Fetch-Site`` other than ``same-origin``/``none`` (Fetch Metadata). Browsers send
  ``Origin`` on every POST and ``Sec-Fetch-Site`` on every request; ``same-site`` is refused
  too, because in subdomains mode the apps are same-site with the portal and must not act on it.
* **Every POST must also be** ``Content-Type: application/json`` (415 otherwise). A cross-site
  HTML form can only send ``application/x-www-form-urlencoded``, ``multipart/form-data`` or
  ``text/plain``; a cross-site ``fetch`` with JSON needs a CORS preflight, which authz never
  grants. This covers old browsers that send neither header.

Scripts and the CLI send neither header and JSON bodies, and pass.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.authz.login.target import public_origin
from lychgate.authz.web import request_origin
from lychgate.gateway.admit_redirect import origin_of

_SAME_ORIGIN_FETCH: Final = frozenset({"same-origin", "none"})


def allowed_origins(request: Request, ctx: AuthzContext) -> frozenset[str]:
    """The origin the browser used (as the gateway reports it) and the public origin."""
    used = origin_of(request_origin(request, ctx))
    return frozenset({public_origin(ctx.settings)} | ({used} if used else set()))


def is_cross_origin(request: Request, ctx: AuthzContext) -> bool:
    """True when ``Origin`` or ``Sec-Fetch-Site`` says another site or origin sent this."""
    origins = request.headers.getlist("origin")
    if origins and (
        len(origins) != 1 or origin_of(origins[0]) not in allowed_origins(request, ctx)
    ):
        return True  # "null", a foreign origin, or two of them
    sites = request.headers.getlist("sec-fetch-site")
    return bool(sites) and (len(sites) != 1 or sites[0].strip().lower() not in _SAME_ORIGIN_FETCH)


def is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";", 1)[0]
    return media_type.strip().lower() == "application/json"


def same_origin(request: Request, ctx: Annotated[AuthzContext, Depends(context)]) -> None:
    """Dependency: refuse a cross-origin request (403). For SSE and reads."""
    if is_cross_origin(request, ctx):
        raise HTTPException(status_code=403, detail="cross_origin")


def csrf_safe(request: Request, ctx: Annotated[AuthzContext, Depends(context)]) -> None:
    """Dependency for state-changing routes: same origin, and JSON for a POST."""
    same_origin(request, ctx)
    if request.method == "POST" and not is_json(request):
        raise HTTPException(status_code=415, detail="json_required")
