"""The gateway's own small responses: denials, redirects and plain pages.

Bodies are fixed strings chosen by status and a public error code: no exception text, no
internal address, no reason (SECURITY.md item 9). Every one is ``no-store`` and ``nosniff``;
HTML pages additionally forbid every subresource and script (``default-src 'none'``).
"""

from __future__ import annotations

import html
import json
from http import HTTPStatus
from typing import Final

from lychgate.gateway.types import Headers, Principal, RequestHead, Respond

_COMMON: Final = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)
_HTML_CSP: Final = ("content-security-policy", "default-src 'none'; frame-ancestors 'none'")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def text(
    status: int, body: str, *, headers: Headers = (), reason: str = "", rid: str = ""
) -> Respond:
    """A ``text/plain`` response. ``reason`` goes to the access log, never to the client;
    ``rid``, the request's id, is a last line for the user to quote."""
    if rid:
        body = f"{body}request id: {rid}\n"
    return Respond(
        status,
        (("content-type", "text/plain; charset=utf-8"), *_COMMON, *headers),
        body.encode(),
        reason,
    )


def json_body(
    status: int,
    value: dict[str, str],
    *,
    headers: Headers = (),
    reason: str = "",
    who: Principal | None = None,
) -> Respond:
    """An ``application/json`` response."""
    body = json.dumps(value, separators=(",", ":")).encode()
    fields = (("content-type", "application/json"), *_COMMON, *headers)
    return Respond(status, fields, body, reason, who)


def html_page(
    status: int,
    message: str,
    *,
    headers: Headers = (),
    reason: str = "",
    who: Principal | None = None,
    rid: str = "",
) -> Respond:
    """A minimal HTML page. ``message`` must be a fixed string of ours (it is not escaped);
    ``rid``, the request's id, is shown under it for the user to quote."""
    phrase = reason_phrase(status)
    shown = f"<p>Request id: <code>{html.escape(rid)}</code></p>" if rid else ""
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        f"<title>{status} {phrase}</title><h1>{phrase}</h1><p>{message}</p>{shown}</html>"
    )
    return Respond(
        status,
        (("content-type", "text/html; charset=utf-8"), *_COMMON, _HTML_CSP, *headers),
        body.encode(),
        reason,
        who,
    )


def redirect(
    location: str, *, status: int = 302, headers: Headers = (), reason: str = ""
) -> Respond:
    """A 302 (or ``status``) to ``location``, which the caller has already validated."""
    return Respond(status, (("location", location), *_COMMON, *headers), b"", reason)


_MESSAGES: Final = {
    "bad_request": "The request could not be understood.",
    "misdirected_request": "This connection cannot serve that host.",
    "forbidden": "You are signed in, but this app is not open to you.",
    "not_found": "There is nothing here.",
    "request_header_fields_too_large": "The request's header fields are too large for this app.",
    "setup_required": "Lychgate is not set up yet.",
    "unavailable": "The gateway is starting up. Try again shortly.",
    "internal_error": "Something went wrong.",
}


def deny(
    status: int,
    error: str,
    head: RequestHead | None,
    *,
    login_url: str | None = None,
    reason: str = "",
    who: Principal | None = None,
) -> Respond:
    """A denial: JSON for scripts and API clients, a small page for browsers.

    ``who`` is the signed-in user a policy refused, named in the access log.

    401 always answers JSON with ``login_url`` (a script follows it; a browser navigation was
    redirected instead) and a ``WWW-Authenticate`` challenge (RFC 9110 section 15.5.2).
    """
    if status == 401:
        body = {"error": error}
        if login_url is not None:
            body["login_url"] = login_url
        challenge = (("www-authenticate", 'Lychgate realm="lychgate"'),)
        return json_body(status, body, headers=challenge, reason=reason, who=who)
    if head is not None and _prefers_html(head):
        message = _MESSAGES.get(error, "The request was refused.")
        return html_page(status, message, reason=reason, who=who, rid=head.rid)
    return json_body(status, {"error": error}, reason=reason, who=who)


def _prefers_html(head: RequestHead) -> bool:
    accept = ",".join(head.header_all("accept")).lower()
    return "text/html" in accept
