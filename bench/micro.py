"""``python -m bench.micro``: the gateway's Python cost per request, without sockets.

One keep-alive client connection and one pooled upstream connection run over fake transports
on a real (uvloop) event loop, so what is timed is only our code: llhttp parsing both ways,
the handler's decision, header rewriting, the response hook and the coalesced writes. A request
is fed to :meth:`ClientConnection.data_received`, the canned upstream answer to
:meth:`UpstreamConnection.data_received`, and the client's bytes are checked to be a 200.

Handlers measured:

* ``trivial``: forwards every request unchanged (the engine alone).
* ``admission``: the real :class:`GatewayHandler` on a snapshot with an admin, one app and a
  real ES256 app token in the cookie, as ``lychgate serve`` would decide it (metrics hook on).
* ``decided``: the same request, answered with the decision the real handler made for it,
  computed once and returned every time: the exchange's work for a real forward (identity
  headers, the app's response rules, the metrics hook) without the handler's. The handler
  alone, called in a loop on one head, takes about 4 µs; ``admission`` minus ``decided`` is
  about 11 µs: in the middle of a request it runs at a third of that speed, and the rest of the
  request runs slower beside it (see README, "Where the small GET's time goes").
* ``browser``: the same, for the head a desktop Chromium sends on a navigation (fifteen
  fields, with a site cookie beside ours) instead of wrk's three lines: each field is parsed,
  decoded, classified and written again, so this is closer to what real traffic costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import uvloop

from lychgate.domain import App
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.http.connection import ClientConnection
from lychgate.gateway.http.context import ResponseHook, ServerContext
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.http.pool import UpstreamPool, unverified_client_context
from lychgate.gateway.http.tunnel_registry import TunnelRegistry
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.metrics import GatewayMetrics
from lychgate.gateway.runner import response_hook
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder, UserProfile
from lychgate.gateway.types import Decision, Forward, Handler, RequestHead, Upstream
from lychgate.ids import AppId, AppSlug, SessionId, UserId, token_sid
from lychgate.tokens import AppTokenClaims, Keyring, encode_app_token, generate_signing_key, rotate

PUBLIC = "http://127.0.0.1:8080"
UPSTREAM = Upstream("http://127.0.0.1:9")
# What nginx, the bench's upstream, answers to GET /small.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 13:52:49 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 33\r\n"
    b"Connection: keep-alive\r\n\r\nlychgate bench: small fixed body\n"
)


class _Transport(asyncio.Transport):
    """Keeps the last write only: enough to check an answer, and cheap."""

    def __init__(self) -> None:
        super().__init__()
        self.last = b""
        self.writes = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.last = bytes(data)
        self.writes += 1

    def writelines(self, list_of_data: Any) -> None:
        self.last = b"".join(list_of_data)
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:  # the pool's sweep closes idle connections after a measurement
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class _NoAuthz:
    async def redeem_code(self, code: str, *, rid: str = "") -> str:
        raise NotImplementedError

    async def revoke_session(
        self, session_id: SessionId, user_id: UserId | None = None, *, rid: str = ""
    ) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Setup:
    """A handler to measure, the request bytes to send it, and its response hook."""

    handler: Handler
    request: bytes
    hook: ResponseHook | None
    owner: str | None = None  # whose requests the pooled connection carries (its user's)


def trivial() -> Setup:
    """The engine alone: every request forwarded unchanged."""

    def handle(head: RequestHead) -> Decision:
        return Forward(UPSTREAM, head.target, head.headers, app=None)

    request = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    return Setup(handle, request, None)


def admission(fields: bytes = b"", cookies: bytes = b"") -> Setup:
    """The real handler, a real token, the metrics hook: what ``lychgate serve`` runs.

    ``fields`` go between Host and Cookie; ``cookies`` come before ours in the Cookie line.
    """
    now = datetime.now(UTC)
    keyring = Keyring(rotate([], now - timedelta(minutes=1), timedelta(hours=12)), now)
    admin, user = UserId("usr_admin"), UserId("usr_bench")
    app = App(AppId("app_bench"), AppSlug("bench"), "Bench", UPSTREAM.url, None, websockets=True)
    snapshot = ConfigSnapshot(
        serial=1,
        issued_at=now,
        issuer=PUBLIC,
        routing="single-host",
        public_url=PUBLIC,
        app_domain="localhost",
        setup_done=True,
        apps=(app,),
        users={
            admin: UserProfile("Admin", "admin@bench.test"),
            user: UserProfile("Bench", "bench@bench.test"),
        },
        revoked_sessions=frozenset({SessionId("ses_gone")}),
        keyring=keyring.public,
        assertion_key=generate_signing_key(now),
    )
    holder = SnapshotHolder()
    holder.replace(snapshot)
    claims = AppTokenClaims(
        sid=token_sid(SessionId("ses_bench")),  # tokens name sessions by handle
        sub=user,
        app=app.slug,
        adm=False,
        iss=PUBLIC,
        iat=now - timedelta(seconds=5),
        exp=now + timedelta(hours=1),
    )
    token = encode_app_token(keyring, claims)
    options = GatewayOptions(authz=Upstream("unix:/nonexistent"))
    handler = GatewayHandler(holder, options, Endpoints(holder, _NoAuthz()))
    request = (
        b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        + fields
        + b"Cookie: "
        + cookies
        + b"lychgate="
        + token.encode()
        + b"\r\n\r\n"
    )
    return Setup(handler, request, response_hook(GatewayMetrics(worker=0), None), owner=user)


# What Chromium sends on a navigation, after the Host line and before the cookie.
BROWSER_FIELDS = (
    b"Connection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="156", "Not.A/Brand";v="99"\r\n'
    b"sec-ch-ua-mobile: ?0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\n'
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/156.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    b"image/apng,*/*;q=0.8\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-User: ?1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Referer: http://127.0.0.1:8080/small\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-GB,en;q=0.9\r\n"
)


def decided() -> Setup:
    """The real handler's decision for the admission request, made once, given every time."""
    real = admission()
    first: list[Decision] = []

    def handle(head: RequestHead) -> Decision:
        if not first:
            first.append(real.handler(head))
        return first[0]

    return Setup(handle, real.request, real.hook, owner=real.owner)


def browser() -> Setup:
    """The real handler, for a browser's navigation head."""
    return admission(BROWSER_FIELDS, b"theme=dark; ")


SETUPS: dict[str, Callable[[], Setup]] = {
    "trivial": trivial,
    "admission": admission,
    "decided": decided,
    "browser": browser,
}


async def measure(setup: Setup, requests: int) -> float:
    """CPU microseconds per request over ``requests`` round trips on one connection."""
    loop = asyncio.get_running_loop()
    pool = UpstreamPool(ssl_context=unverified_client_context())
    ctx = ServerContext(
        loop=loop,
        handler=setup.handler,
        limits=Limits(),
        pool=pool,
        tunnels=TunnelRegistry(),
        scheme="http",
        on_response=setup.hook,
        batch=pool.batch,
    )
    up = UpstreamConnection((UPSTREAM.url, UPSTREAM.verify_tls), pool.batch, 256 * 1024)
    up.connection_made(_Transport())
    up.owner = setup.owner
    pool.release(up)
    client = ClientConnection(ctx)
    client_transport = _Transport()
    client.connection_made(client_transport)
    request = setup.request

    def one() -> None:
        client.data_received(request)
        up.data_received(RESPONSE)

    for _ in range(200):  # warm: caches, the pool, the date memo
        one()
    if not client_transport.last.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected answer: {client_transport.last[:200]!r}")
    gc.collect()
    # CPU time, not wall time: on a shared machine the process is often descheduled.
    started = time.process_time()
    for _ in range(requests):
        one()
    took = time.process_time() - started
    if not client_transport.last.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected answer: {client_transport.last[:200]!r}")
    client.connection_lost(None)
    return took / requests * 1e6


def run(names: Sequence[str], requests: int, repeats: int) -> dict[str, float]:
    """The best of ``repeats`` runs per handler, in microseconds per request."""
    results: dict[str, float] = {}

    async def go() -> None:
        for name in names:
            setup = SETUPS[name]()
            gc.collect()
            gc.freeze()  # as the gateway does after start-up
            try:
                results[name] = min([await measure(setup, requests) for _ in range(repeats)])
            finally:
                gc.unfreeze()

    uvloop.run(go())
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.micro``."""
    p = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("handlers", nargs="*", help=f"from: {', '.join(SETUPS)} (default: all)")
    args = p.parse_args(argv)
    names = args.handlers or list(SETUPS)
    if unknown := [n for n in names if n not in SETUPS]:
        p.error(f"unknown handler {', '.join(unknown)}")
    for name, us in run(names, args.requests, args.repeats).items():
        print(f"{name:10s} {us:6.1f} µs CPU/request  ({1e6 / us:,.0f} req/s of pure Python)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
