"""Prometheus metrics for one gateway worker, cheap on the hot path.

The engine calls :meth:`GatewayMetrics.observe` once per response. The request counter and the
latency histogram are plain integers per app, turned into metric families only when scraped
(a custom collector), so a request costs two dictionary look-ups, a bisection and three
additions, without prometheus_client's per-sample locks. Gauges (open connections, open
tunnels, feed age, and for HTTPS the certificate expiry) and the upstream failures by kind are
read at scrape time from the objects that already count them, so the hot path never updates
them.

With several workers, each one serves its own ``/metrics`` on consecutive ports starting at
``metrics_listen`` (worker 0 on the port given, worker 1 on the next, ...), labelled
``worker``; Prometheus sums them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from lychgate.ids import AppSlug

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_NO_APP = "-"
_REQUESTS = "lychgate_gateway_requests"
_REQUESTS_HELP = "Responses sent, by app and status."
_LATENCY = "lychgate_gateway_request_duration_seconds"
_LATENCY_HELP = "From the end of the request head to the end of the response."
_CLOSED = "lychgate_gateway_tunnels_closed"
_CLOSED_HELP = (
    "WebSockets closed, by app and why: client closed, upstream closed, session ended, "
    "app removed or disabled, idle (tunnel_idle_timeout), gateway stopping..."
)
_FAILURES = "lychgate_gateway_upstream_failures"
_FAILURES_HELP = (
    "Requests an upstream did not answer (502/504), by app and kind: connect, tls, "
    "connect_timeout, read_timeout, closed, malformed, head_too_long, trailers_too_long, "
    "unframed, unasked_upgrade, bad_url, shutdown."
)

_PROXY_REFUSED = "lychgate_gateway_proxy_headers_refused"
_PROXY_REFUSED_HELP = (
    "Connections cut before HTTP with proxy_protocol on, by reason: untrusted_peer (not one of "
    "trusted_proxies), malformed (no header, or one that does not parse), late (not complete "
    "within header_timeout)."
)


class _AppSeries:
    """One app's counts: responses per status, and the latency histogram (not cumulative)."""

    __slots__ = ("buckets", "statuses", "sum")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0


class _Collector:
    """Turns the per-app counts into Prometheus metric families at scrape time."""

    def __init__(self, worker: str, series: dict[AppSlug | None, _AppSeries]) -> None:
        self._worker = worker
        self._series = series

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(_REQUESTS, _REQUESTS_HELP, labels=["worker", "app", "status"])
        yield HistogramMetricFamily(_LATENCY, _LATENCY_HELP, labels=["worker", "app"])

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            _REQUESTS, _REQUESTS_HELP, labels=["worker", "app", "status"]
        )
        latency = HistogramMetricFamily(_LATENCY, _LATENCY_HELP, labels=["worker", "app"])
        bounds = [repr(float(b)) for b in _BUCKETS] + ["+Inf"]  # as prometheus_client prints them
        for app, series in self._series.items():
            name = app or _NO_APP
            for status, count in series.statuses.items():
                requests.add_metric([self._worker, name, str(status)], count)
            cumulative, total = [], 0
            for bound, count in zip(bounds, series.buckets, strict=True):
                total += count
                cumulative.append((bound, float(total)))
            latency.add_metric([self._worker, name], cumulative, series.sum)
        yield requests
        yield latency


class _Counts:
    """A counter family read at scrape time from counts keyed by its label values after
    ``worker`` (``None`` for no app): upstream failures by (app, kind), WebSockets closed by
    (app, reason), PROXY headers refused by (reason,). No ``_created`` series, unlike a
    Counter's."""

    def __init__(
        self,
        worker: str,
        name: str,
        help_text: str,
        labels: list[str],
        counts: Callable[[], Iterable[tuple[tuple[str | None, ...], int]]],
    ) -> None:
        self._worker = worker
        self._name = name
        self._help = help_text
        self._labels = ["worker", *labels]
        self._counts = counts

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._help, labels=self._labels)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._help, labels=self._labels)
        for key, count in list(self._counts()):
            family.add_metric([self._worker, *(value or _NO_APP for value in key)], count)
        yield family


class GatewayMetrics:
    """The gateway's metrics in their own registry (no global state)."""

    def __init__(self, *, worker: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        w = str(worker)
        self._series: dict[AppSlug | None, _AppSeries] = {}
        self.registry.register(_Collector(w, self._series))
        self._connections = Gauge(
            "lychgate_gateway_open_connections",
            "Open client connections.",
            ["worker"],
            registry=self.registry,
        ).labels(w)
        self._tunnels = Gauge(
            "lychgate_gateway_open_tunnels",
            "Open upgraded connections (WebSockets).",
            ["worker"],
            registry=self.registry,
        ).labels(w)
        self._feed_age = Gauge(
            "lychgate_gateway_feed_age_seconds",
            "Seconds since the config feed last confirmed the snapshot (-1: none yet).",
            ["worker"],
            registry=self.registry,
        ).labels(w)
        closed: dict[tuple[AppSlug | None, str], int] = {}
        self._tunnels_closed = closed
        self.registry.register(_Counts(w, _CLOSED, _CLOSED_HELP, ["app", "reason"], closed.items))
        self._worker = w
        self._process: CollectorRegistry | None = None

    def tunnel_closed(self, app: AppSlug | None, reason: str) -> None:
        """Count one tunnel's end (not on the hot path: once per WebSocket). ``reason`` is
        one of the engine's fixed phrases, never text a client or an app sent."""
        key = (app, reason or "unknown")
        self._tunnels_closed[key] = self._tunnels_closed.get(key, 0) + 1

    def observe(self, app: AppSlug | None, status: int, seconds: float) -> None:
        """Count one response."""
        series = self._series.get(app)
        if series is None:
            series = self._series[app] = _AppSeries()
        statuses = series.statuses
        statuses[status] = statuses.get(status, 0) + 1
        # Prometheus buckets count values <= their bound: the first bound >= seconds.
        series.buckets[bisect_left(_BUCKETS, seconds)] += 1
        series.sum += seconds

    def add_process(self) -> None:
        """Add the process's own series: start time (a counter that starts again is a replaced
        worker), CPU, memory, and open descriptors against their limit (EMFILE is near before
        it bites). They read ``/proc`` (with 10k connections open, a listing of 10k
        descriptors), so they live in a registry of their own, rendered by
        :meth:`process_exposition` in a thread; call this in a thread too."""
        registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        self._process = registry

    def exposition(self) -> bytes:
        """The worker's own series in Prometheus text format: read from memory, no I/O, so it
        runs on the event loop, where the counts it reads are never changing under it."""
        return generate_latest(self.registry)

    @property
    def reads_proc(self) -> bool:
        """Whether a scrape includes the process's series (:meth:`add_process` was called)."""
        return self._process is not None

    def process_exposition(self) -> bytes:
        """The process's series (reads ``/proc``: call it in a thread); none before
        :meth:`add_process`."""
        return b"" if self._process is None else generate_latest(self._process)

    def track(
        self,
        *,
        connections: Callable[[], int],
        tunnels: Callable[[], int],
        feed_age: Callable[[], float | None],
        tls_not_after: Callable[[], float] | None = None,
        tls_handshakes: Callable[[], int] | None = None,
        upstream_failures: Callable[[], Mapping[tuple[AppSlug | None, str], int]] | None = None,
        proxy_refusals: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Read these from live objects at scrape time (no TLS: no expiry or handshake
        sample; no ``proxy_protocol``: no count of headers refused)."""
        self._connections.set_function(lambda: float(connections()))
        self._tunnels.set_function(lambda: float(tunnels()))

        def age() -> float:
            value = feed_age()
            return -1.0 if value is None else value

        self._feed_age.set_function(age)
        if upstream_failures is not None:
            failures = upstream_failures
            self.registry.register(
                _Counts(
                    self._worker,
                    _FAILURES,
                    _FAILURES_HELP,
                    ["app", "kind"],
                    lambda: failures().items(),
                )
            )
        if proxy_refusals is not None:
            refusals = proxy_refusals
            self.registry.register(
                _Counts(
                    self._worker,
                    _PROXY_REFUSED,
                    _PROXY_REFUSED_HELP,
                    ["reason"],
                    lambda: (((reason,), n) for reason, n in refusals().items()),
                )
            )
        if tls_not_after is not None:
            Gauge(
                "lychgate_gateway_tls_not_after_timestamp_seconds",
                "When the first of the listener's certificates in use expires (Unix time).",
                ["worker"],
                registry=self.registry,
            ).labels(self._worker).set_function(tls_not_after)
        if tls_handshakes is not None:
            Gauge(
                "lychgate_gateway_tls_handshakes",
                "Accepted TLS sockets not yet connections: waiting for their first bytes, "
                "in a handshake, or answering plain HTTP.",
                ["worker"],
                registry=self.registry,
            ).labels(self._worker).set_function(lambda: float(tls_handshakes()))
