"""What every connection of one listener shares: the handler, limits, pool and counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lychgate.gateway.http.clientcap import ClientCap
from lychgate.gateway.http.failures import UpstreamFailures
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.pool import UpstreamPool
from lychgate.gateway.http.request_ids import RequestIds
from lychgate.gateway.http.tunnel import TunnelEndHook
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.http.writer import Batch
from lychgate.gateway.types import Handler, Principal, RequestHead
from lychgate.ids import AppSlug

if TYPE_CHECKING:
    from lychgate.gateway.http.connection import ClientConnection

# Called once per finished response: the request head (when the head itself was refused, a
# head with an empty method that holds only the client's address, scheme and SNI), the app
# (None when no app was involved), the status sent, the seconds from the end of the request
# head to the end of the response, why the gateway answered as it did ("" for a response
# that the upstream sent, and for refusals whose status says it all), and who it was decided
# for (None when no signed-in user was involved), and the request's id (.request_ids). It
# runs on the hot path: keep it to a counter increment and, when the access log is on, one
# log call.
ResponseHook = Callable[[RequestHead, AppSlug | None, int, float, str, Principal | None, str], None]


@dataclass(slots=True)
class ServerStats:
    """Counters for metrics; read them, never write them from outside the engine."""

    connections_total: int = 0
    requests_total: int = 0
    requests_active: int = 0


@dataclass(slots=True)
class ServerContext:
    loop: asyncio.AbstractEventLoop
    handler: Handler
    limits: Limits
    pool: UpstreamPool
    tunnels: TunnelRegistry
    scheme: str  # "http" or "https", what this listener speaks
    hsts: bytes = b""  # a Strict-Transport-Security line for final answers (https only)
    ids: RequestIds = field(default_factory=RequestIds)
    on_response: ResponseHook | None = None
    on_tunnel_end: TunnelEndHook | None = None
    batch: Batch = field(default_factory=Batch)
    failures: UpstreamFailures = field(default_factory=lambda: UpstreamFailures(time.monotonic))
    stats: ServerStats = field(default_factory=ServerStats)
    connections: set[ClientConnection] = field(default_factory=set)
    clients: ClientCap | None = None  # open connections by client; None: no cap
    draining: bool = False  # graceful shutdown: finish what is in flight, accept nothing new
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set when no connection is left
