"""JSON error bodies for the device API: ``{"error": <kind>, "message", "field"}``.

Routes and their dependencies raise the :class:`~lychgate.errors.LychgateError` tree; the
route class below turns a client error into its status and a small JSON body, and a body that
does not validate into 422 the same way. A refused device
signature is always the bare ``401 {"error": "device_auth"}`` of docs/sign-in-protocol.md,
whichever check failed, so a caller learns nothing about which part was wrong. The one
exception is a replay of a state-changing call, which adds ``"detail": "replayed"``: its
signature was good, so saying so tells a replayer nothing, and it tells an honest client to
sign again. Server-side
failures (the store is down) answer 503 without detail: fail closed, leak nothing
(SECURITY.md item 9).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from lychgate.devicesig import REPLAYED, DeviceAuthError, ReplayedRequest
from lychgate.errors import (
    ClientError,
    Conflict,
    NotFound,
    RateLimited,
    StoreError,
)
from lychgate.gateway.http.failures import Throttle

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

_KINDS: tuple[tuple[type[ClientError], str], ...] = (
    (NotFound, "not_found"),
    (Conflict, "conflict"),
    (RateLimited, "rate_limited"),
)


class ApiError(ClientError):
    """A client error with its own ``error`` kind (``wrong_number``, ``code_refused`` ...)."""

    def __init__(self, kind: str, message: str, *, status: int, field: str | None = None):
        super().__init__(message, field=field, status=status)
        self.kind = kind


def error_response(exc: ClientError | StoreError, lines: Throttle) -> JSONResponse:
    """The JSON answer for a client error, or a bare 503 when the store failed.

    A refused signature and a failed store are logged once per reason every 10 s, with a
    count of the rest (``lines``): anyone can send calls signed by nobody, each a line."""
    if isinstance(exc, ReplayedRequest):
        more = lines.due(("replayed", exc.message))
        if more is not None:
            log.warning(
                "device call refused: %s (a replay, or the same request twice in a second)%s",
                exc,
                more,
            )
        message = "this signed request was used already; sign a new one"
        replayed = {"error": "device_auth", "detail": REPLAYED, "message": message}
        return JSONResponse(replayed, status_code=401)
    if isinstance(exc, DeviceAuthError):
        more = lines.due(("refused", exc.message))
        if more is not None:
            log.info("device call refused: %s%s", exc, more)
        return JSONResponse({"error": "device_auth"}, status_code=401)
    if isinstance(exc, StoreError):
        more = lines.due(("store", type(exc).__name__))
        if more is not None:
            log.warning("device API: store unavailable: %s%s", exc, more)
        return JSONResponse({"error": "unavailable"}, status_code=503)
    kind = getattr(exc, "kind", None) or next(
        (name for cls, name in _KINDS if isinstance(exc, cls)), "bad_request"
    )
    body: dict[str, Any] = {"error": kind, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    headers = {}
    if isinstance(exc, RateLimited):
        headers["retry-after"] = str(int(exc.retry_after))
    return JSONResponse(body, status_code=exc.status, headers=headers)


class JsonErrorRoute(APIRoute):
    """An APIRoute whose handler answers our errors as JSON (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (ClientError, StoreError) as exc:
                return error_response(exc, request.app.state.device_refusals)
            # Anything else (a UsageError is our bug) propagates: a plain 500, no detail.

        return handle


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` (the exact bytes that were verified) as ``model``; 422 when it does not fit."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        message, where = "invalid body", None
        if errors:
            message = errors[0]["msg"]
            where = ".".join(str(p) for p in errors[0]["loc"]) or None
        raise ApiError("bad_request", message, status=422, field=where) from None
