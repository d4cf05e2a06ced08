"""HTML pages of the enroll slice: Jinja2 templates rendered off the event loop.

Loading a template reads a file, so rendering runs in a worker thread; the environment is built
on first use (never at import) and keeps compiled templates. Autoescaping is on. Pages carry a
strict Content-Security-Policy (no script, inline style only), ``no-store`` (a page may hold a
one-time link) and ``Referrer-Policy: no-referrer`` (a link in the URL must not leak onwards).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Final

import segno
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

PAGE_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-robots-tag": "noindex, nofollow",
}


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("lychgate.authz.enroll", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
    )


def _render(name: str, context: dict[str, Any]) -> str:
    return _environment().get_template(name).render(**context)


async def page(name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render template ``name`` with ``context`` into an HTML response."""
    html = await asyncio.to_thread(_render, name, context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def qr_svg(text: str) -> Markup:
    """``text`` as an inline SVG QR code (segno's output is markup we trust, not user text)."""
    svg = segno.make_qr(text, error="m").svg_inline(scale=5, dark="#111", light="#fff")
    # segno draws the modules as path data; the encoded text never appears in the markup.
    return Markup(svg)  # noqa: S704
