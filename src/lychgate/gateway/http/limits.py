"""Per-listener limits and timeouts of the HTTP/1.1 engine.

The field names match :class:`lychgate.config.settings.Limits`, so the edge can build one from
the other. Every limit turns into a small error page (see :mod:`.errors`), never into a stack
trace: 400 for bad framing, 408 for a slow head, 413 for a big body, 431 for big headers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from lychgate.errors import ConfigError

_MAY_BE_ZERO = ("max_body_bytes", "max_connections_per_client")
# Request content the control plane (authz) takes: its JSON bodies are a few hundred bytes.
# The gateway answers 413 beyond it before passing anything on, and authz refuses it too.
CONTROL_PLANE_MAX_BODY: Final = 64 * 1024
# What the sign-in routes read at most (a device's signed call): authz is never given less.
SIGN_IN_MAX_BODY: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client connection may cost us."""

    max_header_bytes: int = 16 * 1024  # request line + header fields (431 beyond)
    max_headers: int = 100  # header fields per request (431 beyond)
    max_body_bytes: int = 1024**3  # request content; Forward.max_body_bytes overrides (413)
    max_drain_bytes: int = 64 * 1024  # content read and discarded after a local answer
    header_timeout: float = 10.0  # the whole head must arrive within this (slowloris, 408)
    idle_timeout: float = 60.0  # keep-alive wait between requests (closed silently)
    send_timeout: float = 60.0  # a client that reads nothing of our response for this long is cut
    linger_timeout: float = 2.0  # read-and-discard after an error, so the client sees it
    write_buffer_high: int = 256 * 1024  # transport high-water mark: pause the other side
    max_pipelined: int = 16  # parsed-ahead requests queued before we stop reading
    tunnel_idle_timeout: float = 3600.0  # a WebSocket with no byte either way is closed
    max_connections_per_client: int = 1024  # per worker; 0: no cap (see .clientcap)
    # TLS handshakes in progress per client and worker (.tls_accept): each holds about 55 KB
    # of the TLS layer's memory until it ends, which a client stalling them would multiply.
    max_handshakes_per_client: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value <= 0 and f.name not in _MAY_BE_ZERO:
                raise ConfigError("must be positive", field=f"limits.{f.name}")
        for name in _MAY_BE_ZERO:
            if getattr(self, name) < 0:
                raise ConfigError("must not be negative", field=f"limits.{name}")
        if self.max_header_bytes < 1024:
            raise ConfigError("must be at least 1024", field="limits.max_header_bytes")
