"""The gateway's HTTP/1.1 engine: an asyncio protocol-level reverse proxy on uvloop + llhttp.

Start here: :func:`start_server` takes a :class:`~lychgate.gateway.types.Handler` and carries
out its decisions. The connection state machine is in :mod:`.connection`, the forwarding of
one request in :mod:`.proxy`, upstream connections in :mod:`.upstream` and :mod:`.pool`.
"""

from lychgate.gateway.http.headers import strip_hop_by_hop
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.server import GatewayServer, start_server

__all__ = ["GatewayServer", "Limits", "start_server", "strip_hop_by_hop"]
