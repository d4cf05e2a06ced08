"""Every authz answer says ``X-Content-Type-Options: nosniff`` (FastAPI's own 404, 405 and
422, the JSON routes and the body cap's 413 did not), once."""

from __future__ import annotations

import httpx
import pytest

from authz.login_fixtures import browser
from lychgate.gateway.http.limits import CONTROL_PLANE_MAX_BODY

__all__ = ["browser"]  # a fixture used by name


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/.lychgate/nope", {}, 404),
        ("PUT", "/.lychgate/login", {}, 405),
        ("POST", "/.lychgate/api/v1/login", {"json": {"rd": "/", "<b>x": 1}}, 422),
        ("GET", "/.lychgate/api/v1/sessions", {}, 401),
        ("GET", "/.lychgate/authz/healthz", {}, 200),
        (
            "POST",
            "/.lychgate/api/v1/login",
            {"headers": {"content-length": str(CONTROL_PLANE_MAX_BODY + 1)}},
            413,
        ),
    ],
)
async def test_every_answer_forbids_sniffing(
    browser: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    r = await browser.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.headers.get_list("x-content-type-options") == ["nosniff"]
