"""Logging set-up for the long-running commands: plain lines on stderr."""

from __future__ import annotations

import logging
import sys

from lychgate.gateway.accesslog import LOGGER_NAME, AccessLogHandler
from lychgate.request_log import NOTE_FIELD, RequestNote


def setup_logging(level: str) -> None:
    """Human-readable logs on stderr; the access log (JSON lines) alone on stdout. Each line
    names its process: the workers of a gateway, authz and the demo apps share one stderr,
    and a line logged while serving a request ends with its id (:mod:`lychgate.request_log`)."""
    root = logging.getLogger()
    root.handlers.clear()
    errors = logging.StreamHandler(sys.stderr)
    errors.setFormatter(
        logging.Formatter(
            "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s%(" + NOTE_FIELD + ")s"
        )
    )
    errors.addFilter(RequestNote())
    root.addHandler(errors)
    root.setLevel(level.upper())
    # httpx logs every request at INFO: the gateway's call to authz on each app opened, and
    # the feed's reconnections. Its failures come back to us as exceptions, which we log.
    chatty = logging.getLogger("httpx")
    chatty.setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    access = logging.getLogger(LOGGER_NAME)
    access.handlers.clear()
    access.propagate = False
    access.addHandler(AccessLogHandler(sys.stdout))  # stops at a broken pipe, saying so once
    access.setLevel(logging.INFO)
