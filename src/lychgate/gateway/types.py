"""The seam between the HTTP/1.1 engine and the admission decision.

The engine parses a request head into a :class:`RequestHead`, asks a :class:`Handler` for a
:class:`Decision`, and carries the decision out. The decision is made without I/O (STYLE.md
item 1); the engine owns sockets, framing, streaming and timeouts.

Header names in :class:`RequestHead` are lower-cased ASCII ``str``; values are ``str`` decoded
as latin-1 (RFC 9110 section 5.5: field values are octets, historically ISO-8859-1), so they
round-trip to the wire byte for byte.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from lychgate.ids import AppSlug, SessionId, UserId
from lychgate.valuetype import value_type

Headers = tuple[tuple[str, str], ...]


@value_type  # built per request: see lychgate.valuetype
class RequestHead:
    """A parsed HTTP/1.1 request head, as the client sent it."""

    method: str  # upper-case, as on the wire
    target: str  # the raw request-target (origin-form, or absolute-form if the client sent it)
    path: str  # the path part of the target, still percent-encoded
    query: str  # without the leading "?"; "" when absent
    headers: Headers  # in order, duplicates kept; names lower-cased
    http_version: str  # "1.0" or "1.1"
    client_ip: str  # the TCP peer, or the PROXY header's client (never a forwarded header)
    scheme: str  # "http" or "https": what the gateway's own listener speaks
    sni: str | None = None  # TLS server name, when TLS
    rid: str = ""  # the request's id (the gateway's, or a trusted proxy's: .http.request_ids)

    def header(self, name: str) -> str | None:
        """The single value of ``name``; None when absent. Callers decide what duplicates mean."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


def headless(client_ip: str, scheme: str, sni: str | None = None) -> RequestHead:
    """The head of a record for an answer given before any request head was read: only the
    client, for the access log and the metrics."""
    return RequestHead("", "", "", "", (), "", client_ip, scheme, sni)


class Principal(Protocol):
    """Who a request was decided for: the identity admission established from its token.

    The engine only carries it to the response hook, so the access log can name the user and
    the session behind each request (the session by its public handle: its id is a secret).
    """

    @property
    def user_id(self) -> UserId: ...

    @property
    def session_id(self) -> SessionId: ...


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a forwarded request goes. ``url`` is ``http://``, ``https://`` or ``unix:/path``."""

    url: str
    verify_tls: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 60.0


@value_type
class Forward:
    """Proxy the request to ``upstream``.

    ``headers`` are the end-to-end request headers to send, already rewritten by the forwarding
    rules (identity added, client identity headers and the gateway's cookies stripped). The
    engine adds framing and hop-by-hop headers itself.
    """

    upstream: Upstream
    target: str  # the origin-form target to send upstream (normalized, what was decided on)
    headers: Headers
    app: AppSlug | None  # for logs and metrics; None for the authz control plane
    allow_upgrade: bool = False
    max_body_bytes: int | None = None  # None: the listener's default
    idle_timeout: float | None = None  # keep-alive wait after this response; None: the listener's
    # Applied to the upstream's response fields (lower-cased names, as parsed) before they go
    # to the client, for every response to this request: final, 1xx and 101.
    response_fields: ResponseFields | None = None
    who: Principal | None = None  # the signed-in user: the access log names them

    @property
    def session_id(self) -> SessionId | None:
        """The session the request was admitted for: its tunnels close when it is revoked."""
        who = self.who
        return None if who is None else who.session_id


@value_type
class Respond:
    """Answer from the gateway itself, without reaching an upstream."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    reason: str = ""  # why, for the access log; never sent
    who: Principal | None = None  # a signed-in user refused by policy, for the access log
    app: AppSlug | None = None  # the app whose own rule refused it (access log, metrics)


LocalEndpoint = Callable[[RequestHead], Awaitable[Respond]]
ResponseFields = Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class Local:
    """Answer from a gateway endpoint that needs I/O (callback, logout): run ``endpoint``."""

    endpoint: LocalEndpoint = field(repr=False)
    name: str = ""


Decision = Forward | Respond | Local


class Handler(Protocol):
    """Decides what to do with a request head. Must not do I/O and must not raise."""

    def __call__(self, head: RequestHead, /) -> Decision: ...
