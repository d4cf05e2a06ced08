"""Connections per client: one address must not hold every socket a worker can open.

Theory of operation
-------------------
Every other limit bounds what one *connection* may cost. Without this one, a single client could
open connections until the worker's open-file limit, each held until its timeouts, and lock
everyone else out meanwhile. :class:`ClientCap` counts a worker's open connections by client
and refuses a new one beyond ``limits.max_connections_per_client`` (1,024 by default) with a
canned ``503`` and ``Retry-After``, before reading anything from it.

* **What a client is.** An IPv4 address; for IPv6 its ``/64``, since one host is commonly given
  a whole ``/64`` and could otherwise take a new address per connection. An IPv4-mapped IPv6
  address (a dual-stack listener) counts as its IPv4 address.
* **Who is not counted.** Loopback, and the configured ``trusted_proxies``: a reverse proxy or
  load balancer in front carries many clients on its own addresses (and the local benchmark, and
  health checks, come from loopback). Put the limit there instead.
* **Per worker.** Each worker counts its own connections (the kernel spreads them by hash), so
  a client may hold up to ``workers`` times the limit in all.
* **Tunnels.** A connection that becomes a WebSocket tunnel stops counting: it took a valid
  session to open, and tunnels are bounded by their own idle timeout.
* **TLS.** On a TLS listener a connection is counted when its TCP connection is accepted,
  before its handshake (:mod:`.tls_accept`), so handshakes a client opens and stalls count too,
  each for at most ``header_timeout``. One over the cap is cut at once, without the ``503``: a
  TLS client could not read it.

Refusals are logged at WARNING, at most one line per client every few seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Final

from lychgate.gateway.http.failures import Throttle

log = logging.getLogger(__name__)

_REFUSAL_REST: Final = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"too many connections\n"
)


def refusal(date: bytes, rid: str) -> bytes:
    """What a refused connection is told, before it sends anything, at ``date`` (an
    IMF-fixdate: every response carries one, RFC 9110 section 6.6.1), with the id its record
    has (``rid``), as every answer of the gateway's own carries."""
    return b"HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\nx-request-id: %s\r\n%s" % (
        date,
        rid.encode("ascii"),
        _REFUSAL_REST,
    )


#: :meth:`ClientCap.take` for a connection that is let in but not counted.
UNCOUNTED: Final = ""


def is_loopback(ip: str) -> bool:
    """True for a loopback address, in either family (and IPv4-mapped)."""
    return ip.startswith(("127.", "::ffff:127.")) or ip == "::1"


def peer_ip(transport: asyncio.BaseTransport) -> str:
    """The address of a transport's peer; "" for none (a unix socket), which is not counted."""
    peer = transport.get_extra_info("peername")
    return peer[0] if isinstance(peer, tuple) else ""


def client_key(ip: str) -> str:
    """Who ``ip`` counts as: itself for IPv4, its ``/64`` for IPv6 (see the module docstring)."""
    if ":" not in ip:
        return ip
    if ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    try:
        network = ipaddress.IPv6Network((ip.partition("%")[0], 64), strict=False)
    except ValueError:
        return ip
    return f"{network.network_address}/64"


class ClientCap:
    """Open connections by client, for one listener of one worker."""

    __slots__ = ("_counts", "_exempt", "_limit", "_setting", "_throttle", "refused")

    def __init__(
        self,
        limit: int,
        *,
        exempt: Callable[[str], bool] = is_loopback,
        clock: Callable[[], float] = time.monotonic,
        setting: str = "max_connections_per_client",
    ) -> None:
        self._limit = limit
        self._exempt = exempt
        self._setting = setting  # what the refusal's log line names
        self._counts: dict[str, int] = {}
        self._throttle = Throttle(clock)
        self.refused = 0

    def take(self, ip: str) -> str | None:
        """Count a new connection from ``ip``. Returns the key to :meth:`give_back` when it
        closes, :data:`UNCOUNTED` for one that is not counted, or None to refuse it."""
        if not ip or self._exempt(ip):
            return UNCOUNTED
        key = client_key(ip)
        held = self._counts.get(key, 0)
        if held >= self._limit:
            self.refused += 1
            more = self._throttle.due(key)
            if more is not None:
                log.warning(
                    "refused a connection: %s holds %d (%s)%s", key, held, self._setting, more
                )
            return None
        self._counts[key] = held + 1
        return key

    def give_back(self, key: str) -> None:
        """A connection counted under ``key`` closed (or became a tunnel)."""
        if key == UNCOUNTED:
            return
        held = self._counts.get(key, 0) - 1
        if held > 0:
            self._counts[key] = held
        else:
            self._counts.pop(key, None)

    def held(self, ip: str) -> int:
        """How many connections ``ip``'s client holds now (for tests and metrics)."""
        return self._counts.get(client_key(ip), 0)
