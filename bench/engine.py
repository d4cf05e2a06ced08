"""``python -m bench.engine``: the gateway's HTTP engine alone, as a benchmark target.

Lychgate's own engine (:func:`lychgate.gateway.http.server.start_server`: pooled upstream
connections, responses in request order, timeouts, limits, hop-by-hop headers stripped both
ways, coalesced writes) with a handler that forwards every request unchanged: no snapshot, no
token, no admission, no identity headers, no metrics. Between the bare relay and the gateway in
the bench's table it splits the gap in two: what the engine costs, and what admission adds.

It is not a proxy anybody should run: it forwards anybody to the one upstream.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvloop

from lychgate.gateway.http.pool import unverified_client_context
from lychgate.gateway.http.server import start_server
from lychgate.gateway.types import Decision, Forward, RequestHead, Upstream


async def serve(port: int, upstream_port: int) -> None:
    upstream = Upstream(f"http://127.0.0.1:{upstream_port}")

    def forward(head: RequestHead) -> Decision:
        return Forward(upstream, head.target, head.headers, app=None, allow_upgrade=True)

    # The upstream is plain HTTP: no CA bundle to read.
    server = await start_server(
        forward, port=port, backlog=4096, upstream_ssl=unverified_client_context()
    )
    await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument("--upstream", type=int, required=True, help="port on 127.0.0.1")
    args = p.parse_args(argv)
    uvloop.run(serve(args.listen, args.upstream))  # until the bench's SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
