"""Housekeeping: delete what has ended, so that the database does not grow with every sign-in.

Every login request, session and one-time code (a sign-in hand-off, an enrollment link) is a
row with an end, ``expires_at``. Nothing acts on one after its end: a transition, a redemption
or a token refresh checks the end first. Without a sweep the rows stayed for good, and the
login page makes one request per visit for anyone who opens it.

Each authz deletes rows whose end is more than :func:`kept_for` ago (a day), the shared
rate-limit counters of windows that began over an hour ago (they last a minute), and the used
device signatures whose ±60 s window ended over an hour ago, once shortly after it starts and
then every hour. Replicas sweeping at once do no harm: each deletes what is
still there. A session stays at least an hour longer than authz lists ended sessions in the
gateways' snapshot (:func:`~lychgate.authz.sessions_to_end.ended_listed_for`), so a gateway that
reconnects still learns of its end. The audit log is not swept: it is the record.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from lychgate.authz.context import AuthzContext
from lychgate.authz.sessions_to_end import ended_listed_for
from lychgate.errors import StoreError

log = logging.getLogger(__name__)

KEEP_ENDED: Final = timedelta(days=1)  # an ended row stays this long, for people looking back
KEEP_RATE_WINDOWS: Final = timedelta(hours=1)  # rate-limit windows are a minute long
# A used signature must be remembered while any replica could still accept its timestamp:
# its window's end by the signer's clock, plus however far a replica's clock lags the
# sweeper's. An hour is far more than clocks of one deployment disagree.
KEEP_USED_SIGNATURES: Final = timedelta(hours=1)
SWEEP_EVERY: Final = 3600.0  # seconds between sweeps
FIRST_SWEEP_AFTER: Final = 60.0  # seconds after start: not in the way of starting up


@dataclass(frozen=True, slots=True)
class Swept:
    """How many rows one sweep deleted, by kind."""

    login_requests: int
    sessions: int
    codes: int
    rate_windows: int = 0
    signatures: int = 0

    @property
    def total(self) -> int:
        return (
            self.login_requests + self.sessions + self.codes + self.rate_windows + self.signatures
        )


def kept_for(ctx: AuthzContext) -> timedelta:
    """How long after its end a row is deleted: :data:`KEEP_ENDED`, or an hour past the time
    an ended session is listed to the gateways when ``feed_max_stale`` makes that longer."""
    return max(KEEP_ENDED, ended_listed_for(ctx) + timedelta(hours=1))


async def sweep(ctx: AuthzContext) -> Swept:
    """Delete the rows that ended more than :func:`kept_for` ago, the rate-limit counters of
    windows that began over :data:`KEEP_RATE_WINDOWS` ago, and the used device signatures
    whose window ended over :data:`KEEP_USED_SIGNATURES` ago. Raises StoreError."""
    now = ctx.clock()
    before = now - kept_for(ctx)
    store = ctx.store
    return Swept(
        login_requests=await store.login_requests.delete_ended(before),
        sessions=await store.sessions.delete_expired(before),
        codes=await store.one_time_codes.delete_expired(before),
        rate_windows=await store.rate_counts.delete_before(now - KEEP_RATE_WINDOWS),
        signatures=await store.used_signatures.delete_expired(now - KEEP_USED_SIGNATURES),
    )


async def run(
    ctx: AuthzContext, *, every: float = SWEEP_EVERY, first_after: float = FIRST_SWEEP_AFTER
) -> None:
    """Sweep after ``first_after`` seconds, then every ``every`` seconds, until cancelled. A
    failed store is logged and tried again at the next sweep."""
    delay = first_after
    while True:
        await asyncio.sleep(delay)
        delay = every
        try:
            swept = await sweep(ctx)
        except StoreError as exc:
            log.warning("housekeeping: the store failed (%s); next sweep in %.0f s", exc, every)
            continue
        except Exception:  # a bug: said, and the sweeps go on rather than end unnoticed
            log.exception("housekeeping: the sweep failed; next sweep in %.0f s", every)
            continue
        if swept.total:
            log.info(
                "housekeeping: deleted %d login requests, %d sessions and %d one-time codes "
                "that ended over %s ago, %d rate-limit counters and %d used device signatures",
                swept.login_requests,
                swept.sessions,
                swept.codes,
                kept_for(ctx),
                swept.rate_windows,
                swept.signatures,
            )
