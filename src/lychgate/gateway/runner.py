"""Running the gateway: assemble the engine, the handler, the feed and the side listeners.

Theory of operation
-------------------
:func:`~.plan.prepare` does every blocking thing (reading secrets and certificates) before
any event loop runs, and returns a :class:`~.plan.GatewayPlan`. :func:`serve_worker` runs one
worker on it: a snapshot holder fed by the config feed from authz, a handler deciding on that
snapshot, the HTTP/1.1 engine carrying the decisions out, and optionally a metrics listener and
a plain-HTTP listener that redirects to HTTPS. When the feed brings a snapshot that revokes
sessions, their tunnels are closed at once. An HTTPS worker checks its certificate files every
minute and uses renewed ones for new connections (:mod:`.cert_reload`). :func:`run_gateway` runs
one worker in this process, or forks N that share the port through SO_REUSEPORT. It first
checks that every address it will listen on is free, and that no two of them are the same
(:func:`check_listeners`): a taken port is then one clear error, and a port that another
gateway's workers share is refused rather than joined.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import uvloop
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lychgate.config import Settings
from lychgate.errors import ClientError
from lychgate.gateway.access_changes import follow_changes
from lychgate.gateway.accesslog import AccessLog
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.authz_client import HttpAuthzClient
from lychgate.gateway.cert_reload import watch_certificates
from lychgate.gateway.collector import settle_collector
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.feed import FeedClient
from lychgate.gateway.feed_guard import TunnelGuard, tunnel_gate
from lychgate.gateway.feed_http import authz_base
from lychgate.gateway.http.clientcap import is_loopback
from lychgate.gateway.http.context import ResponseHook
from lychgate.gateway.http.fdlimit import raise_open_file_limit
from lychgate.gateway.http.request_ids import trusts_nobody
from lychgate.gateway.http.server import GatewayServer, start_server
from lychgate.gateway.http.stop import Stop
from lychgate.gateway.http.tls import quiet_undecodable_server_names
from lychgate.gateway.http.tunnel import TunnelEnded, TunnelEndHook
from lychgate.gateway.http.workers import STOP_SIGNALS, run_workers
from lychgate.gateway.listeners import check_listeners
from lychgate.gateway.metrics import GatewayMetrics
from lychgate.gateway.paths import parse_request_target
from lychgate.gateway.plan import GatewayPlan
from lychgate.gateway.routing import request_host
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder
from lychgate.gateway.trusted_proxies import TrustedPeers
from lychgate.gateway.types import Decision, Handler, Local, Principal, RequestHead, Respond
from lychgate.ids import AppSlug

log = logging.getLogger(__name__)
DRAIN_TIMEOUT = 10.0
# A worker listens once the feed has given it a snapshot, or after this long without one.
FIRST_SNAPSHOT_WAIT = 5.0
_NO_RELOAD = "SIGHUP while stopping: no certificate check"


def uncapped(settings: Settings) -> Callable[[str], bool]:
    """The clients that ``max_connections_per_client`` does not count: loopback, and the
    trusted proxies, which carry many clients each."""
    proxies = TrustedPeers(settings.trusted_proxies)
    if not proxies:
        return is_loopback
    return lambda ip: is_loopback(ip) or proxies.trusts(ip)


def trusted_ids(settings: Settings) -> Callable[[str], bool]:
    """The clients whose own ``X-Request-Id`` names a request: the trusted proxies."""
    proxies = TrustedPeers(settings.trusted_proxies)
    return proxies.trusts if proxies else trusts_nobody


def proxy_senders(settings: Settings) -> Callable[[str], bool] | None:
    """With ``proxy_protocol``, the peers whose PROXY header names the client; else None."""
    return TrustedPeers(settings.trusted_proxies).trusts if settings.proxy_protocol else None


async def start_side_listeners(
    plan: GatewayPlan,
    metrics: GatewayMetrics,
    holder: SnapshotHolder,
    worker: int,
    reuse_port: bool,
    exempt: Callable[[str], bool],
    on_redirect: ResponseHook | None = None,
) -> list[GatewayServer]:
    """The metrics and HTTP-to-HTTPS listeners that the plan asks for. They take the same
    limits, and count the same clients, as the main listener. The redirect listener's answers
    go to ``on_redirect`` (the access log and request metrics); the metrics listener's scrapes
    are not counted. The redirect listener, public as the main one, reads a PROXY header as it
    does (``proxy_protocol``); the metrics listener, for the scraper alone, does not."""
    redirect = redirect_handler(holder)
    wanted: list[tuple[str, Handler, tuple[str, int] | None, int, bool, ResponseHook | None]] = [
        ("metrics", metrics_handler(metrics), plan.metrics, worker, False, None),  # port/worker
        ("http redirect", redirect, plan.redirect, 0, reuse_port, on_redirect),
    ]
    side: list[GatewayServer] = []
    for what, handler, where, offset, reuse, hook in wanted:
        if where is None:
            continue
        host, port = where
        try:
            server = await start_server(
                handler,
                host=host,
                port=port + offset,
                reuse_port=reuse,
                limits=plan.limits,
                uncapped=exempt,
                ids_from=trusted_ids(plan.settings),
                on_response=hook,
                proxy_from=proxy_senders(plan.settings) if handler is redirect else None,
            )
        except BaseException:
            for started in side:
                await started.close(drain_timeout=0.0)
            raise
        log.info("gateway worker %d: %s on %s:%d", worker, what, host, server.port)
        side.append(server)
    return side


def response_hook(metrics: GatewayMetrics, access: AccessLog | None) -> ResponseHook:
    observe = metrics.observe
    record = None if access is None else access.record

    def count(
        head: RequestHead | None,
        app: AppSlug | None,
        s: int,
        t: float,
        why: str,
        who: Principal | None,
        rid: str,
    ) -> None:
        observe(app, s, t)
        if record is not None:
            record(head, app, s, t, why, who, rid)

    return count


def tunnel_end_hook(metrics: GatewayMetrics, access: AccessLog | None) -> TunnelEndHook:
    """Each tunnel's end: counted by reason, and recorded when the access log is on."""
    closed = metrics.tunnel_closed
    record = None if access is None else access.tunnel_end

    def end(ended: TunnelEnded) -> None:
        closed(ended.app, ended.why)
        if record is not None:
            record(ended)

    return end


def metrics_handler(metrics: GatewayMetrics) -> Callable[[RequestHead], Decision]:
    """``GET /metrics`` (and HEAD, its head alone) in Prometheus text format; 405 for another
    method there, 404 anywhere else. The gateway's own series are rendered on the event loop
    (they only read memory); the process's, which read ``/proc``, in a thread, so that a
    scrape never stalls the requests in flight."""

    async def scrape(_head: RequestHead) -> Respond:
        body = metrics.exposition()
        if metrics.reads_proc:
            body += await asyncio.to_thread(metrics.process_exposition)
        return Respond(200, (("content-type", CONTENT_TYPE_LATEST),), body)

    scraping = Local(scrape, "metrics")

    def handle(head: RequestHead) -> Decision:
        if head.path != "/metrics":
            return Respond(404, (("content-type", "text/plain"),), b"not found\n")
        if head.method not in ("GET", "HEAD"):
            allow = (("content-type", "text/plain"), ("allow", "GET, HEAD"))
            return Respond(405, allow, b"method not allowed\n")
        return scraping

    return handle


def redirect_handler(holder: SnapshotHolder) -> Callable[[RequestHead], Decision]:
    """Plain HTTP to HTTPS, only for hosts this deployment serves (never an open redirect)."""

    not_found = Respond(404, (("content-type", "text/plain"),), b"not found\n")

    def handle(head: RequestHead) -> Decision:
        snapshot = holder.current
        if snapshot is None or not head.path.startswith("/"):
            return not_found  # no snapshot, or "OPTIONS *": nowhere to send it
        try:
            # One Host, lower case, no port or trailing dot; an absolute-form target must
            # name the same (RFC 9112 section 3.2.2), as on the https listener.
            host = request_host(head, parse_request_target(head.target)).name
        except ClientError:
            return not_found
        if not _serves(snapshot, host):
            return not_found
        location = snapshot.origin_for(host) + head.path
        if head.query:
            location += "?" + head.query
        return Respond(308, (("location", location), ("content-type", "text/plain")), b"")

    return handle


def _serves(snapshot: ConfigSnapshot, host: str) -> bool:
    return host == snapshot.public_host or host in snapshot.apps_by_host


async def serve_worker(
    plan: GatewayPlan,
    stop: asyncio.Event,
    *,
    worker: int = 0,
    reuse_port: bool = False,
    ready: Callable[[GatewayServer], None] | None = None,
    reload_on_sighup: bool = False,
    hurry: asyncio.Event | None = None,
) -> None:
    """Run one gateway worker until ``stop`` is set, then drain and close (cut short once
    ``hurry`` is set: a second Ctrl-C).

    ``reload_on_sighup`` checks the certificate files at once on SIGHUP (the worker's loop
    must run in the main thread).
    """
    settings = plan.settings
    base = authz_base(settings.effective_authz_listen)
    holder = SnapshotHolder()
    authz = HttpAuthzClient(base, plan.internal_token)
    options = GatewayOptions.from_settings(settings)
    endpoints = Endpoints(holder, authz, max_stale=options.max_stale)
    handler = GatewayHandler(holder, options, endpoints)
    metrics = GatewayMetrics(worker=worker)
    access = AccessLog(trusted_proxies=settings.trusted_proxies) if settings.access_log else None
    exempt = uncapped(settings)
    recorded = response_hook(metrics, access)
    # No snapshot, or a stale one: every request is, or soon will be, refused until the feed
    # is back, so its reconnections come often.
    feed = FeedClient(
        base, plan.internal_token, holder, hurry=lambda: holder.current is None or handler.stale
    )
    feeding = asyncio.create_task(feed.run(), name="config-feed")

    async def end_feed() -> None:  # a worker that never listened
        feed.stop()
        await asyncio.gather(feeding, return_exceptions=True)
        await authz.aclose()

    if not await _first_snapshot(holder, stop, FIRST_SNAPSHOT_WAIT):
        await end_feed()
        return  # stopped before it listened
    if holder.current is None:
        log.warning(
            "gateway worker %d: no snapshot from authz after %g s; listening all the same "
            "(503 until one comes)",
            worker,
            FIRST_SNAPSHOT_WAIT,
        )
    # The side listeners first: a worker whose metrics port is taken fails before it joins
    # the shared port, where each failing retry reset the connections queued to it.
    if plan.metrics is not None:
        await asyncio.to_thread(metrics.add_process)
    try:
        side = await start_side_listeners(
            plan, metrics, holder, worker, reuse_port, exempt, on_redirect=recorded
        )
    except BaseException:
        await end_feed()
        raise
    try:
        server = await start_server(
            handler,
            host=plan.host,
            port=plan.port,
            limits=plan.limits,
            ssl=plan.tls.context if plan.tls is not None else None,
            hsts=plan.hsts,
            reuse_port=reuse_port,
            on_response=recorded,
            on_tunnel_end=tunnel_end_hook(metrics, access),
            upstream_ssl=plan.upstream_ssl,
            uncapped=exempt,
            ids_from=trusted_ids(settings),
            proxy_from=proxy_senders(settings),
        )
    except BaseException:
        for extra in side:
            await extra.close(drain_timeout=0.0)
        await end_feed()
        raise

    holder.add_listener(follow_changes(server))
    server.gate_tunnels(tunnel_gate(holder, max_stale=options.max_stale))
    certs = plan.tls
    metrics.track(
        connections=lambda: server.open_connections,
        tunnels=lambda: server.open_tunnels,
        feed_age=holder.age,
        tls_not_after=None if certs is None else (lambda: certs.not_after.timestamp()),
        tls_handshakes=None if certs is None else (lambda: server.handshakes),
        upstream_failures=lambda: server.upstream_failures,
        proxy_refusals=(lambda: server.proxy_refusals) if settings.proxy_protocol else None,
    )
    log.info("gateway worker %d listening on %s:%d", worker, plan.host, server.port)
    if ready is not None:
        ready(server)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_join(feeding), name="config-feed")
            guard = TunnelGuard(holder, server.close_all_open, max_stale=options.max_stale)
            guarding = group.create_task(guard.run(), name="tunnel-guard")
            reloading = watch_certificates(plan.tls, plan.renew_tls, group, reload_on_sighup)
            await stop.wait()
            feed.stop()
            guarding.cancel()
            if reloading is not None:
                reloading.cancel()
    finally:
        if reload_on_sighup:  # no reload while draining, nor the default's death (nginx's way)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, log.info, _NO_RELOAD)
        for extra in side:
            await extra.close(drain_timeout=1.0)
        await server.close(drain_timeout=DRAIN_TIMEOUT, cut=hurry)
        await authz.aclose()
    log.info("gateway worker %d stopped", worker)  # a drain, if any, logged as it began


async def _first_snapshot(holder: SnapshotHolder, stop: asyncio.Event, within: float) -> bool:
    """Wait until the feed has applied a snapshot, or ``within`` s have passed: a worker that
    listened before it had one answered 503 to clients the others could serve (a worker
    replaced while the rest served on). False if ``stop`` came first."""
    came = asyncio.Event()
    stop_listening = holder.add_listener(lambda old, new: came.set())
    waits = [asyncio.ensure_future(came.wait()), asyncio.ensure_future(stop.wait())]
    try:
        if holder.current is None:
            await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_listening()
        for waiting in waits:
            waiting.cancel()
    return not stop.is_set()


async def _join(task: asyncio.Task[None]) -> None:
    """``task``, started before the worker's task group, as one of its tasks."""
    await task


def run_gateway(plan: GatewayPlan, *, workers: int, reload_on_sighup: bool = False) -> int:
    """Run the gateway in the foreground; returns the exit code. SIGINT/SIGTERM stop it.

    With ``reload_on_sighup`` (``lychgate gateway``), SIGHUP checks the certificate files at
    once. Without (``serve``, whose terminal's hangup must still stop everything), SIGHUP stops
    it as SIGTERM does. A listen address in use raises a :class:`LychgateError` first, and
    two listeners on one address a :class:`ConfigError`.
    """
    check_listeners(plan, workers)
    # What lives as long as the process is frozen, and full collections rare (.collector).
    settle_collector()
    raise_open_file_limit()  # before forking: workers inherit it
    if plan.tls is not None:
        quiet_undecodable_server_names()  # a hostile SNI would write tracebacks to stderr
    if reload_on_sighup:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's loop handles it
    if workers > 1:
        return run_workers(
            workers,
            lambda stop, slot: serve_worker(
                plan,
                stop.asked,
                hurry=stop.hurry,
                worker=slot,
                reuse_port=True,
                reload_on_sighup=reload_on_sighup,
            ),
            relay=(signal.SIGHUP,) if reload_on_sighup else (),
        )

    stops = [s for s in STOP_SIGNALS if not (reload_on_sighup and s == signal.SIGHUP)]

    async def single() -> None:
        loop = asyncio.get_running_loop()
        stop = Stop(loop.time)
        stop.install(loop, stops)
        await serve_worker(plan, stop.asked, hurry=stop.hurry, reload_on_sighup=reload_on_sighup)

    uvloop.run(single())
    return 0
