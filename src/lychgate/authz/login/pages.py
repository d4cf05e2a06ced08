"""HTML pages and their static files, shared by the login and portal slices.

Pages are Jinja2 templates with autoescaping, served with a strict Content Security Policy: no
inline script or style at all (``script-src 'self'``, ``style-src 'self'``), scripts and CSS
come from the slice's ``static/`` folder, and data reaches the scripts through ``data-*``
attributes. Inline SVG (the QR code) is markup, not script, so the policy allows it. Pages
cannot be framed (clickjacking a sign-in page is the classic attack) and are never cached.

Reading a template from disk is blocking I/O, so templates are loaded and rendered in a worker
thread; Jinja2 caches a compiled template after its first load.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from lychgate import __version__

CSP: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
LOGIN_TEMPLATES: Final = Path(__file__).parent / "templates"
LOGIN_STATIC: Final = Path(__file__).parent / "static"
ASSET_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


@functools.cache
def _environment(directories: tuple[Path, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in directories]),
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(directories: tuple[Path, ...], name: str, variables: Mapping[str, Any]) -> str:
    template = _environment(directories).get_template(name)
    return template.render(version=__version__, **variables)


async def render_page(
    directories: tuple[Path, ...],
    name: str,
    variables: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render template ``name`` (searched in ``directories``) into a page response."""
    html = await asyncio.to_thread(_render, directories, name, variables)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def asset(directory: Path, name: str, allowed: frozenset[str]) -> FileResponse:
    """One of the ``allowed`` files of a ``static/`` folder (404 for any other name)."""
    if name not in allowed:
        raise HTTPException(status_code=404, detail="not_found")
    media_type = ASSET_TYPES[Path(name).suffix]
    return FileResponse(
        directory / name,
        media_type=media_type,
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )
