"""Keeping a running gateway's certificates fresh: a check every minute, or at once on SIGHUP.

Each worker checks its own :class:`~lychgate.gateway.http.tls.ServerCertificates`: the check
is a few ``stat`` calls, run in a thread like the reload that follows a change, so the event
loop never waits on the disk. ``lychgate gateway`` asks for a check at once on SIGHUP (its
worker supervisor passes the signal on), which is what ``systemctl reload`` sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from lychgate.gateway.http.tls import ServerCertificates

log = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 60.0  # seconds between checks of the certificate files


class CertificateReloader:
    """Runs :meth:`ServerCertificates.reload` every ``interval`` seconds and on request."""

    def __init__(self, certs: ServerCertificates, *, interval: float = CHECK_INTERVAL) -> None:
        self.certs = certs
        self.interval = interval
        self._wake = asyncio.Event()
        self.checks = 0  # completed checks, for tests and logs

    def request(self) -> None:
        """Check now (a signal handler calls this)."""
        log.info("checking the TLS certificate files now")
        self._wake.set()

    async def run(self) -> None:
        """Check until cancelled. A failed check is logged; the next one tries again."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await asyncio.to_thread(self.certs.reload)
            except Exception:
                log.exception("checking the TLS certificate files failed")
            self.checks += 1
