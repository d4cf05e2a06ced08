"""Claim values, and the checks every JWS token gets (RFC 7519 section 4.1).

The claim readers are strict: a required claim must be present and of the JSON type we write,
strings we write are never empty, and NumericDates are integers in a sane range. A failure is a
:class:`~lychgate.errors.TokenError` with reason ``missing_claim`` or ``invalid_claim``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from lychgate.ids import AppSlug, SessionId, UserId
from lychgate.tokens.clock import CLOCK_SKEW, from_numeric_date, require_aware
from lychgate.tokens.errors import Reason, fail

#: ``typ`` header values (RFC 8725 section 3.11, explicit typing). One per token kind.
APP_TOKEN_TYP: Final = "lychgate-app+jwt"  # noqa: S105 (a type name, not a secret)
ASSERTION_TYP: Final = "lychgate-id+jwt"

#: Life of an identity assertion (DESIGN.md, token table).
ASSERTION_TTL: Final = timedelta(seconds=60)

# NumericDates outside [0, 2**40) are refused before they reach datetime (which would overflow).
_MAX_DATE: Final = 2**40


@dataclass(frozen=True, slots=True)
class AppTokenClaims:
    """The app token in the ``__Host-lychgate`` cookie: which session may use which app."""

    sid: SessionId
    sub: UserId
    app: AppSlug
    adm: bool
    iss: str
    iat: datetime
    exp: datetime
    kid: str = ""  # the key that signed it, once verified


@dataclass(frozen=True, slots=True)
class IdentityAssertion:
    """What the gateway tells an upstream app in ``X-Lychgate-Assertion``. ``aud`` is the app."""

    iss: str
    aud: AppSlug
    sub: UserId
    email: str | None
    name: str
    groups: tuple[str, ...]
    adm: bool
    iat: datetime
    exp: datetime

    @classmethod
    def issue(
        cls,
        *,
        issuer: str,
        app: AppSlug,
        sub: UserId,
        email: str | None,
        name: str,
        groups: tuple[str, ...] = (),
        adm: bool = False,
        now: datetime,
        ttl: timedelta = ASSERTION_TTL,
    ) -> IdentityAssertion:
        """An assertion issued at ``now`` that lives ``ttl`` (60 s by default)."""
        require_aware(now)
        return cls(issuer, app, sub, email, name, groups, adm, now, now + ttl)


def read_str(claims: Mapping[str, object], name: str, *, empty: bool = False) -> str:
    """A required string claim; empty only where ``empty`` says so (a display name may be)."""
    value = claims.get(name)
    if value is None:
        fail(Reason.MISSING_CLAIM, f"token has no {name!r} claim", field=name)
    if not isinstance(value, str) or not (value or empty):
        fail(Reason.INVALID_CLAIM, f"claim {name!r} is not a non-empty string", field=name)
    return value


def read_optional_str(claims: Mapping[str, object], name: str) -> str | None:
    """A string claim that may be absent or null."""
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        fail(Reason.INVALID_CLAIM, f"claim {name!r} is not a string", field=name)
    return value


def read_bool(claims: Mapping[str, object], name: str) -> bool:
    """A required boolean claim (JSON true/false, never 0/1 or a string)."""
    value = claims.get(name)
    if value is None:
        fail(Reason.MISSING_CLAIM, f"token has no {name!r} claim", field=name)
    if not isinstance(value, bool):
        fail(Reason.INVALID_CLAIM, f"claim {name!r} is not a boolean", field=name)
    return value


def read_str_tuple(claims: Mapping[str, object], name: str) -> tuple[str, ...]:
    """A required array of strings (frozen to a tuple by the parser)."""
    value = claims.get(name)
    if value is None:
        fail(Reason.MISSING_CLAIM, f"token has no {name!r} claim", field=name)
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        fail(Reason.INVALID_CLAIM, f"claim {name!r} is not an array of strings", field=name)
    return value


def read_date(claims: Mapping[str, object], name: str) -> int:
    """A required NumericDate. We only ever write integers, so only integers are accepted."""
    value = claims.get(name)
    if value is None:
        fail(Reason.MISSING_CLAIM, f"token has no {name!r} claim", field=name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_DATE:
        fail(Reason.INVALID_CLAIM, f"claim {name!r} is not a NumericDate", field=name)
    return value


def check_times(claims: Mapping[str, object], now: datetime) -> tuple[int, int]:
    """Check ``exp``, ``nbf`` (if present) and ``iat`` against ``now``; return ``(iat, exp)``.

    RFC 7519 section 4.1.4: the token is expired when ``now >= exp`` (no leeway).
    Section 4.1.5: it is not yet valid when ``now < nbf``; we allow :data:`CLOCK_SKEW`, and
    refuse an ``iat`` further in the future than that too.
    """
    require_aware(now)
    moment = now.timestamp()
    exp = read_date(claims, "exp")
    iat = read_date(claims, "iat")
    if moment >= exp:
        fail(Reason.EXPIRED, "token has expired", field="exp")
    ahead = moment + CLOCK_SKEW.total_seconds()
    if "nbf" in claims and ahead < read_date(claims, "nbf"):
        fail(Reason.NOT_YET_VALID, "token is not valid yet", field="nbf")
    if ahead < iat:
        fail(Reason.NOT_YET_VALID, "token was issued in the future", field="iat")
    return iat, exp


def check_issuer(claims: Mapping[str, object], issuer: str) -> None:
    """RFC 7519 section 4.1.1: ``iss`` must be exactly the issuer we expect."""
    if read_str(claims, "iss") != issuer:
        fail(Reason.WRONG_ISSUER, "token is from another issuer", field="iss")


def dates(iat: int, exp: int) -> tuple[datetime, datetime]:
    """``(iat, exp)`` as aware UTC datetimes."""
    return from_numeric_date(iat), from_numeric_date(exp)
