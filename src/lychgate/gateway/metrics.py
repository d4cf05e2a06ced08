"""Prometheus metrics for one gateway worker, cheap on the hot path.

The engine calls :meth:`GatewayMetrics.observe` once per response. Label children are cached
per (app, status) so that a request costs two dictionary look-ups and two increments. Gauges
(open connections, open tunnels, feed age) are read at scrape time from the objects that
already count them, so the hot path never updates them.

With several workers, each one serves its own ``/metrics`` on consecutive ports starting at
``metrics_listen`` (worker 0 on the port given, worker 1 on the next, ...), labelled
``worker``; Prometheus sums them.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lychgate.ids import AppSlug

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_NO_APP = "-"


class GatewayMetrics:
    """The gateway's metrics in their own registry (no global state)."""

    def __init__(self, *, worker: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        w = str(worker)
        self._requests = Counter(
            "lychgate_gateway_requests",
            "Responses sent, by app and status.",
            ["worker", "app", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "lychgate_gateway_request_duration_seconds",
            "From the end of the request head to the end of the response.",
            ["worker", "app"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
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
        self._worker = w
        self._counters: dict[tuple[str, int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def observe(self, app: AppSlug | None, status: int, seconds: float) -> None:
        """Count one response."""
        name = app or _NO_APP
        counter = self._counters.get((name, status))
        if counter is None:
            counter = self._requests.labels(self._worker, name, str(status))
            self._counters[(name, status)] = counter
        counter.inc()
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._latency.labels(self._worker, name)
            self._histograms[name] = histogram
        histogram.observe(seconds)

    def track(
        self,
        *,
        connections: Callable[[], int],
        tunnels: Callable[[], int],
        feed_age: Callable[[], float | None],
    ) -> None:
        """Read these gauges from live objects at scrape time."""
        self._connections.set_function(lambda: float(connections()))
        self._tunnels.set_function(lambda: float(tunnels()))

        def age() -> float:
            value = feed_age()
            return -1.0 if value is None else value

        self._feed_age.set_function(age)
