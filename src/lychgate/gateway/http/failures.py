"""Warnings about upstreams that fail: each (upstream, reason) at most once per window.

A 502 or 504 tells the client only that something behind the gateway went wrong; the operator
needs to know what (refused, timed out, an untrusted certificate) and where. An upstream that
is down fails every request sent to it, so one line per failure would flood the log: the
first failure of a kind is logged at once, the rest of its window are counted and the count is
told with the next line of that kind. The access log (when on) still has every one, with the
same reason.

Every failure is also counted by app and *kind*, a short fixed word (``connect``, ``tls``,
``connect_timeout``, ``read_timeout``, ``closed``, ``malformed``...; see
:attr:`.upstream.Failure.kind`), for the
``lychgate_gateway_upstream_failures_total`` metric: reasons carry free text (an error
message, a host name), kinds never do, so the metric's label values stay few.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from lychgate.ids import AppSlug

log = logging.getLogger("lychgate.gateway.upstream")

WINDOW: Final = 10.0  # seconds between two lines about the same upstream and reason
_MAX_KINDS: Final = 1024  # a bound on what is remembered: upstreams and reasons are few


class Throttle:
    """Decides which lines about a recurring event to log: the first of each key at once, then
    at most one per ``window`` seconds, saying how many were held back in between."""

    __slots__ = ("_clock", "_seen", "_window")

    def __init__(self, clock: Callable[[], float], *, window: float = WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._seen: dict[object, list[float]] = {}  # key -> [when last logged, held since]

    def due(self, key: object) -> str | None:
        """None to hold this one back; else the suffix to log with it (how many were held)."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._window:
            seen[1] += 1
            return None
        held = int(seen[1]) if seen is not None else 0
        if seen is None and len(self._seen) >= _MAX_KINDS:
            self._seen.clear()
        self._seen[key] = [now, 0]
        return f" ({held} more since the last report)" if held else ""


class UpstreamFailures:
    """Logs upstream failures at WARNING, throttled (see the module docstring)."""

    __slots__ = ("_log", "_throttle", "counts")

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        window: float = WINDOW,
        logger: logging.Logger = log,
    ) -> None:
        self._throttle = Throttle(clock, window=window)
        self._log = logger
        self.counts: dict[tuple[AppSlug | None, str], int] = {}  # (app, kind) -> failures

    def report(self, upstream: str, app: AppSlug | None, kind: str, reason: str) -> None:
        counted = (app, kind)
        self.counts[counted] = self.counts.get(counted, 0) + 1
        more = self._throttle.due((upstream, reason))
        if more is not None:
            self._log.warning("app %s, upstream %s: %s%s", app or "-", upstream, reason, more)
