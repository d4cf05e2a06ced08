"""Keeping a running gateway's certificates fresh: a check every minute, or at once on SIGHUP.

Each worker checks its own :class:`~lychgate.gateway.http.tls.ServerCertificates`: the check
is a few ``stat`` calls, run in a thread like the reload that follows a change, so the event
loop never waits on the disk. ``lychgate gateway`` asks for a check at once on SIGHUP (its
worker supervisor passes the signal on), which is what ``systemctl reload`` sends.

It also watches the expiry of the certificates in use: said once at start, and warned about
once a day from :data:`WARN_BEFORE` ahead (renewal is overdue by then: certbot renews 30 days
ahead, and ``lychgate init`` too), and as an error once the certificate has expired.

When the certificate comes from the internal CA and its key is on this machine, the reloader
renews it too (``renew``): from :data:`~lychgate.tls.files.RENEW_BEFORE` ahead of its expiry,
a check first re-issues ``server.pem`` (in a thread, under the directory's lock, so workers
that try at once issue one certificate) and then reloads it like any other change. A failed
renewal (the CA itself expiring, its files gone) is logged as an error and tried again an
hour later; the expiry warnings above still say when it becomes urgent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from lychgate.errors import ConfigError
from lychgate.gateway.http.tls import ServerCertificates
from lychgate.tls.files import RENEW_BEFORE

log = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 60.0  # seconds between checks of the certificate files
WARN_BEFORE: Final = timedelta(days=14)  # warn about an expiry this close
WARN_EVERY: Final = timedelta(days=1)  # and again this often while it lasts
RETRY_RENEW: Final = timedelta(hours=1)  # after a failed renewal


class CertificateReloader:
    """Runs :meth:`ServerCertificates.reload` every ``interval`` seconds and on request."""

    def __init__(
        self,
        certs: ServerCertificates,
        *,
        interval: float = CHECK_INTERVAL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        renew: Callable[[datetime], bool] | None = None,
    ) -> None:
        """``renew(now)`` re-issues the certificate files if due and says whether it did
        (:func:`~lychgate.tls.files.renew_server_cert`); blocking, so run in a thread."""
        self.certs = certs
        self.interval = interval
        self._clock = clock
        self._renew = renew
        self._renew_failed: datetime | None = None
        self._wake = asyncio.Event()
        self._warned: tuple[datetime, datetime] | None = None  # (expiry, when warned)
        self.checks = 0  # completed checks, for tests and logs

    def request(self) -> None:
        """Check now (a signal handler calls this)."""
        log.info("checking the TLS certificate files now")
        self._wake.set()

    def watch_expiry(self) -> None:
        """Warn (at most once a day) when the certificates in use expire soon or have expired."""
        now, expiry = self._clock(), self.certs.not_after
        if expiry - now > WARN_BEFORE:
            return
        warned = self._warned
        if warned is not None and warned[0] == expiry and now - warned[1] < WARN_EVERY:
            return
        self._warned = (expiry, now)
        if expiry <= now:
            log.error("the TLS certificate expired at %s: renew it now", expiry.isoformat())
        else:
            days = (expiry - now) / timedelta(days=1)
            log.warning(
                "the TLS certificate expires in %.1f days (%s): renew it", days, expiry.isoformat()
            )

    async def renew_if_due(self) -> bool:
        """Re-issue the certificate files when renewal is due; True if a new one was issued."""
        now, renew = self._clock(), self._renew
        if renew is None or self.certs.not_after - now > RENEW_BEFORE:
            return False
        failed = self._renew_failed
        if failed is not None and now - failed < RETRY_RENEW:
            return False
        try:
            issued = await asyncio.to_thread(renew, now)
        except ConfigError as exc:  # says what to do: the CA expiring, its files gone
            self._renew_failed = now
            log.error("could not renew the TLS certificate from the internal CA: %s", exc)
            return False
        except Exception:
            self._renew_failed = now
            log.exception("could not renew the TLS certificate from the internal CA")
            return False
        self._renew_failed = None
        if issued:
            log.info("issued a new TLS certificate from the internal CA")
        return issued

    async def run(self) -> None:
        """Check until cancelled. A failed check is logged; the next one tries again."""
        log.info("TLS certificate in use until %s", self.certs.not_after.isoformat())
        self.watch_expiry()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.renew_if_due()
            try:
                await asyncio.to_thread(self.certs.reload)
            except Exception:
                log.exception("checking the TLS certificate files failed")
            self.watch_expiry()
            self.checks += 1


def watch_certificates(
    certs: ServerCertificates | None,
    renew: Callable[[datetime], bool] | None,
    group: asyncio.TaskGroup,
    on_sighup: bool,
) -> asyncio.Task[None] | None:
    """Start checking the certificate files in ``group`` (and on SIGHUP, with ``on_sighup``:
    ``lychgate gateway``); the task, to cancel at the end. None on plain HTTP."""
    loop = asyncio.get_running_loop()
    if certs is None:
        if on_sighup:
            loop.add_signal_handler(
                signal.SIGHUP, log.info, "SIGHUP: plain HTTP, no certificates to reload"
            )
        return None
    reloader = CertificateReloader(certs, renew=renew)
    if on_sighup:
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    return group.create_task(reloader.run(), name="certificate-reload")
