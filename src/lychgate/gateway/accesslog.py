"""The structured access log: one JSON object per response, off by default.

Fields: ``ts`` (UTC, ISO 8601), ``client`` (the TCP peer), ``method``, ``host``, ``path``
(without the query: queries carry one-time codes and other secrets), ``app``, ``status``,
``ms`` and ``ua``. Cookies and Authorization headers are never logged.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from lychgate.gateway.types import RequestHead
from lychgate.ids import AppSlug

LOGGER_NAME = "lychgate.access"


class AccessLog:
    """Writes access records to the ``lychgate.access`` logger at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(LOGGER_NAME)

    def record(
        self, head: RequestHead | None, app: AppSlug | None, status: int, seconds: float
    ) -> None:
        self._log.info(access_line(head, app, status, seconds, now=datetime.now(UTC)))


def access_line(
    head: RequestHead | None,
    app: AppSlug | None,
    status: int,
    seconds: float,
    *,
    now: datetime,
) -> str:
    """The JSON text of one access record."""
    record: dict[str, object] = {
        "ts": now.isoformat(timespec="milliseconds"),
        "status": status,
        "ms": round(seconds * 1000, 3),
        "app": app,
    }
    if head is not None:
        record.update(
            client=head.client_ip,
            method=head.method,
            host=head.header("host"),
            path=head.path,
            ua=head.header("user-agent"),
        )
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True)
