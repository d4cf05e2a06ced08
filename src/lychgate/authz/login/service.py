"""The browser's side of a login request: start it, read it, finish it into a session.

Theory of operation (DESIGN.md flow 3, docs/sign-in-protocol.md)::

    start ──► pending ──(device approves)──► approved ──finish──► finished ──► session cookie
                 │  └──(device denies)──► denied
                 └──(login_request_ttl passes)──► expired

The store owns the transitions (one conditional UPDATE each, so one winner); this module only
decides what the browser sees. A ``pending`` or ``approved`` request past ``expires_at`` reads
as ``expired`` whatever the row says, because the store will not move it any more. ``finish``
creates the session first (the request row refers to it), then moves ``approved -> finished``;
if another finish won meanwhile, the new session is revoked before anyone has seen its id. A
finish refused because the approver can no longer sign in (their user disabled, the device
revoked) denies the request for good, as ``lychgate user disable`` does to every approval of
that user's: enabling them again must not make it finishable.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from lychgate.authz.context import AuthzContext
from lychgate.authz.login.binding import new_secret
from lychgate.authz.login.target import Target, redirect_after_sign_in
from lychgate.domain import AuditEvent, LoginRequest, LoginStatus, Session
from lychgate.errors import Conflict
from lychgate.ids import SESSION_ID_PREFIX, LoginRequestId, SessionId, new_id

#: States after which nothing the browser waits for can happen any more.
FINAL: Final = frozenset({LoginStatus.DENIED, LoginStatus.EXPIRED, LoginStatus.FINISHED})
DEVICE_LOGIN_PATH: Final = "/.lychgate/d/login/"
_MAX_IP_CHARS: Final = 64


@dataclass(frozen=True, slots=True)
class StartedLogin:
    """A new login request, the binding secret to set as a cookie (shown once), and its URL."""

    login: LoginRequest
    secret: str
    login_url: str


@dataclass(frozen=True, slots=True)
class FinishedLogin:
    session: Session
    redirect: str


def public_status(login: LoginRequest, now: datetime) -> LoginStatus:
    """The status the browser sees at ``now`` (expiry applied; see the module docstring)."""
    live = login.status in (LoginStatus.PENDING, LoginStatus.APPROVED)
    if live and login.expires_at <= now:
        return LoginStatus.EXPIRED
    return login.status


def login_url(public_url: str, login_id: LoginRequestId) -> str:
    """What the QR code holds: the device's page for this request."""
    return f"{public_url}{DEVICE_LOGIN_PATH}{login_id}"


def new_number() -> int:
    """The two-digit verification number, 10-99, from ``secrets``."""
    return 10 + secrets.randbelow(90)


async def start_login(
    ctx: AuthzContext, target: Target, *, ip: str, user_agent: str
) -> StartedLogin:
    """Store a new pending login request for ``target`` and audit ``login.requested``."""
    now = ctx.clock()
    secret, digest = new_secret()
    login = LoginRequest(
        id=LoginRequestId(new_id("lr_")),
        secret_hash=digest,
        number=new_number(),
        rd=target.rd,
        app_slug=None if target.app is None else target.app.slug,
        status=LoginStatus.PENDING,
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.login_request_ttl),
        user_agent=user_agent,
        ip=ip[:_MAX_IP_CHARS],
    )
    await ctx.store.login_requests.create(login)
    details = {"login": login.id, "app": login.app_slug or ""}
    await ctx.store.audit.append(
        AuditEvent(None, now, "login.requested", None, None, ip or None, details)
    )
    return StartedLogin(login, secret, login_url(ctx.settings.public_url, login.id))


async def finish_login(
    ctx: AuthzContext, login: LoginRequest, *, ip: str, user_agent: str
) -> FinishedLogin:
    """Turn an approved request into a session; Conflict unless it is approved and unused
    (``field`` "finished" when it was finished already, perhaps by another authz replica or
    another tab of the same browser, "status" when it is not approved)."""
    now = ctx.clock()
    status = public_status(login, now)
    if status is LoginStatus.FINISHED:
        raise Conflict("the login request was already finished", field="finished")
    if status is not LoginStatus.APPROVED or login.user_id is None:
        raise Conflict(f"the login request is {status.value}", field="status")
    user = await ctx.store.users.get(login.user_id)
    if user.disabled:
        await _withdraw(ctx, login)
        raise Conflict("the user is disabled", field="user")
    if login.device_id is None or (await ctx.store.devices.get(login.device_id)).revoked:
        await _withdraw(ctx, login)
        raise Conflict("the device that approved it was revoked", field="device")
    session = Session(
        id=SessionId(new_id(SESSION_ID_PREFIX)),
        user_id=user.id,
        device_id=login.device_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.session_ttl),
        last_seen_at=now,
        revoked=False,
        user_agent=user_agent,
        ip=ip[:_MAX_IP_CHARS],
    )
    await ctx.store.sessions.create(session)
    try:
        finished = await ctx.store.login_requests.finish(login.id, session_id=session.id, now=now)
    except BaseException:
        # The session row is already there; nobody will ever hold its id, but revoke it so no
        # live row outlives a failed finish. If the store is down this fails too: then it stays
        # unusable (its id never left the server) until it expires.
        with contextlib.suppress(Exception):
            await ctx.store.sessions.revoke(session.id, now)
        raise
    if not finished:
        await ctx.store.sessions.revoke(session.id, now)
        if (await ctx.store.login_requests.get(login.id)).status is LoginStatus.FINISHED:
            raise Conflict("the login request was already finished", field="finished")
        # Revoked since it approved (or its user disabled, or the request expired meanwhile).
        raise Conflict("the device that approved it can no longer sign in", field="device")
    details = {"login": login.id, "app": login.app_slug or ""}
    await ctx.store.audit.append(
        AuditEvent(None, now, "login.finished", user.id, login.device_id, ip or None, details)
    )
    redirect = await redirect_after_sign_in(ctx, user, app_slug=login.app_slug, rd=login.rd)
    return FinishedLogin(session, redirect)


async def _withdraw(ctx: AuthzContext, login: LoginRequest) -> None:
    """Deny an approved request whose approver can no longer sign in, for good: its status
    then reads ``denied`` (not ``approved`` for the rest of its life), and enabling the user
    again cannot make it finishable. ``lychgate user disable`` does this too, for all of them."""
    assert login.user_id is not None
    await ctx.store.login_requests.deny_approved(user_id=login.user_id, request_id=login.id)
