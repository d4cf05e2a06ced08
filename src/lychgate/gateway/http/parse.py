"""From a parsed request head to a :class:`.Request`: the engine's own request rules.

llhttp already refuses bad framing (DESIGN.md, known traps). What it accepts, these rules
narrow further, before any handler sees the request; each refusal is an error page and the
end of the connection:

* HTTP versions other than 1.0 and 1.1: 505.
* ``CONNECT``: 405. The gateway is not a forward proxy.
* An HTTP/1.1 request without exactly one ``Host``, or any request with two: 400
  (RFC 9112 section 3.2; SECURITY.md item 4).
* ``Transfer-Encoding`` other than one field that says ``chunked``: 501, as in nginx
  (RFC 9112 section 6.1). llhttp checks only that ``chunked`` comes last; a coding before it
  (``identity, chunked``, ``gzip, chunked``, or a second field) would be passed on to an app
  that may not know it, and an app that reads ``identity`` as "no coding" would take the
  chunked content for the next request (request smuggling).
* ``Transfer-Encoding`` in an HTTP/1.0 request: 400. RFC 9112 section 6.1 calls that framing
  faulty; a keep-alive HTTP/1.0 peer could otherwise frame what follows differently from us
  (request smuggling), so it is refused like any other faulty framing, as nginx does.
* A fragment (``#``) in the request-target, or a target that is not origin-, absolute- or
  asterisk-form: 400 (RFC 9112 section 3.2).
* An ``Expect`` other than ``100-continue``: 417 (RFC 9110 section 10.1.1).
* An Upgrade request with content: 400. llhttp treats what follows the head as tunnel bytes,
  so the content's framing would be ignored: refused rather than guessed.
"""

from __future__ import annotations

from typing import Final

from httptools import HttpParserError, HttpRequestParser, parse_url

from lychgate.gateway.http.request import Request
from lychgate.gateway.http.request_ids import RequestIds
from lychgate.gateway.types import RequestHead

_METHODS: dict[bytes, str] = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
}


# The fields these rules read.
_HOST, _LENGTH, _CHUNKED, _EXPECT = range(4)
_FRAMING: Final[dict[str, int]] = {
    "host": _HOST,
    "content-length": _LENGTH,
    "transfer-encoding": _CHUNKED,
    "expect": _EXPECT,
}


def is_websocket_handshake(head: RequestHead) -> bool:
    """Whether an Upgrade request is one the engine tunnels: ``GET``, HTTP/1.1, asking for
    ``websocket`` alone (RFC 6455 section 4.1). Any other (``h2c``, a list, HTTP/1.0) is
    answered as a plain request, as RFC 9110 section 7.8 lets a server do, and as it requires
    for HTTP/1.0: a tunnel to another protocol (``h2c``) would let a client speak past every
    rule the gateway applies per request."""
    if head.method != "GET" or head.http_version != "1.1":
        return False
    offered = head.header_all("upgrade")
    return len(offered) == 1 and offered[0].strip(" \t").lower() == "websocket"


def split_target(target: str) -> tuple[str, str]:
    """The path and query of a request-target (RFC 9112 section 3.2); ValueError if unusable."""
    if target[:1] == "/":  # origin-form, the usual case
        path, _, query = target.partition("?")
        return path, query
    if target == "*":
        return "*", ""
    try:
        url = parse_url(target.encode("latin-1"))  # absolute-form
    except HttpParserError:
        raise ValueError("not a request-target") from None
    if not url.schema or not url.host:
        raise ValueError("not a request-target")
    return (url.path or b"/").decode("latin-1"), (url.query or b"").decode("latin-1")


def make_request(
    parser: HttpRequestParser,
    url: bytes,
    fields: list[tuple[str, str]],
    client_ip: str,
    scheme: str,
    sni: str | None,
    ids: RequestIds,
) -> Request:
    """The :class:`.Request` for a complete head; ``error`` is set when a rule refuses it."""
    raw_method = parser.get_method()
    method = _METHODS.get(raw_method) or raw_method.decode("ascii")
    version = parser.get_http_version()
    target = url.decode("latin-1")
    headers = tuple(fields)
    bad_target = False
    try:
        path, query = split_target(target)
    except ValueError:
        path, query, bad_target = "", "", True
    rid = ids.new() if ids.trusts_nobody else ids.of(client_ip, headers)
    head = RequestHead(method, target, path, query, headers, version, client_ip, scheme, sni, rid)
    req = Request(head)
    req.keep_alive = parser.should_keep_alive()
    req.upgrade = parser.should_upgrade()
    hosts = codings = 0
    expect: str | None = None
    for name, value in headers:
        kind = _FRAMING.get(name)
        if kind is None:
            continue  # most fields: one dict lookup, not four comparisons
        if kind == _HOST:
            hosts += 1
        elif kind == _LENGTH:
            req.content_length = int(value)  # llhttp checked: digits, no duplicate
        elif kind == _CHUNKED:
            req.chunked = True  # llhttp checked: chunked is last, no Content-Length
            codings += 1 if value.strip(" \t").lower() == "chunked" else 2  # > 1: refused
        else:  # a list field (RFC 9110 10.1.1): several lines are one list, judged whole
            expect = value if expect is None else f"{expect}, {value}"
    refusal = _refusal(req, method, version, target, hosts, codings, expect)
    if refusal is None and bad_target:
        refusal = 400, "request-target not understood"
    if refusal is not None:
        req.error, req.why = refusal
    elif expect is not None and version == "1.1" and req.has_body:
        req.expect_continue = True  # an HTTP/1.0 expectation is ignored (RFC 9110 10.1.1)
    return req


def _refusal(
    req: Request,
    method: str,
    version: str,
    target: str,
    hosts: int,
    codings: int,
    expect: str | None,
) -> tuple[int, str] | None:
    """The error status and why, for a head the rules in the module docstring refuse."""
    if version not in ("1.1", "1.0"):
        return 505, f"HTTP/{version} not served"
    if method == "CONNECT":
        return 405, "CONNECT not served"
    if hosts > 1:
        return 400, "several Host fields"
    if hosts == 0 and version == "1.1":
        return 400, "no Host field"
    if req.chunked and version == "1.0":
        return 400, "Transfer-Encoding in HTTP/1.0"
    if codings > 1:  # a coding beside chunked, or a second Transfer-Encoding field
        return 501, "a transfer coding other than one chunked"
    if "#" in target:
        return 400, "fragment in the request-target"
    if expect is not None and not _continue_only(expect):
        return 417, "an expectation other than 100-continue"
    if req.upgrade and req.has_body:
        return 400, "Upgrade with content"
    return None


def _continue_only(expect: str) -> bool:
    """Whether the ``Expect`` list asks for 100-continue and nothing else (RFC 9110 10.1.1):
    its members trimmed (5.5: whitespace around a value is not part of it), empty ones
    skipped (5.6.1), 100-continue twice no other expectation."""
    return {m.strip(" \t").lower() for m in expect.split(",")} - {""} == {"100-continue"}
