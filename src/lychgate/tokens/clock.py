"""Time as tokens see it: aware datetimes in, NumericDate (RFC 7519 section 2) on the wire."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final

from lychgate.errors import UsageError

#: Allowed clock difference between the issuer and the verifier, applied to ``nbf`` and ``iat``
#: only. authz stamps ``iat`` in whole seconds and the token is used at once, so a gateway whose
#: clock runs a little behind would otherwise see a fresh token "from the future". ``exp`` gets
#: no leeway: RFC 7519 section 4.1.4 says the current time MUST be before it, and a token that
#: dies a moment early costs a redirect, while one that lives late widens a replay window.
CLOCK_SKEW: Final = timedelta(seconds=5)


def require_aware(now: datetime) -> None:
    """Refuse naive datetimes: their ``timestamp()`` silently uses the local zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise UsageError("expected a timezone-aware datetime", field="now")


def numeric_date(moment: datetime) -> int:
    """Seconds since the epoch, rounded down (RFC 7519 section 2, NumericDate)."""
    require_aware(moment)
    return math.floor(moment.timestamp())


def from_numeric_date(seconds: int) -> datetime:
    """The aware UTC datetime for a NumericDate."""
    return datetime.fromtimestamp(seconds, UTC)
