"""The gateway's ``X-Request-Id`` names the authz request it came with, in authz's logs.

Every request reaches authz through a gateway, which sends exactly one id with each
(:mod:`lychgate.gateway.http.request_ids`): the browser's own, the device's, and the gateway's
back-channel calls (a code's redemption, a logout's revocation), which carry the id of the
browser request they serve. A value that is not one the gateway would keep from a trusted
proxy (1 to 128 characters of ``[A-Za-z0-9._~:@/+=-]``), or two of them, names nothing: authz
may listen where a client reaches it without a gateway (``authz_listen`` on TCP), and a log
line must not carry a client's newline or quote.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from lychgate.request_log import CURRENT, ID_FIELD, one_id

_FIELD = ID_FIELD.encode("ascii")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The id that ``headers`` (an ASGI scope's) name the request by, or ``""``."""
    return one_id([value.decode("latin-1") for name, value in headers if name.lower() == _FIELD])


class RequestIdScope:
    """ASGI middleware: sets :data:`lychgate.request_log.CURRENT` for the request's task
    (not reset: see :mod:`lychgate.request_log`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            CURRENT.set(request_id(scope["headers"]))
        await self.app(scope, receive, send)
