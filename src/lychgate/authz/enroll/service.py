"""Redeeming an enrollment link: bind a new device key to a user, or create the first admin.

Theory of operation (DESIGN.md flows 1 and 3; links are made by
:mod:`lychgate.deployment.enroll`). The code in the link is the credential, so this call is
unsigned. Everything the request says is checked *before* the code is redeemed, so a typo never
burns a link. Redemption is one conditional UPDATE in the store (SECURITY.md item 6): of two
racing devices exactly one gets the record, and a replay gets nothing.

An ``enroll`` code binds the device to the user named in its payload. An ``admin-setup`` code
creates the first admin at that moment, with the ``user_name`` and ``email`` from the body; a
request without ``user_name`` is never tried against admin-setup codes, so it cannot burn one;
if its code is an open setup link, it is told so (400 ``user_name_required``) rather than
refused like a bad code.
While an admin exists, admin-setup codes are refused (after redemption: they are dead anyway).
Two setup codes redeemed at the same instant could each see "no admin yet", and the store has
no atomic "insert the first admin" operation. So after creating ours we count again, and an
admin that finds another one steps down (disabled, its device revoked, its e-mail address
freed) and gets 409 saying so (:data:`RACED`). Both racers may step down; that fails closed:
setup stays open and ``lychgate init`` prints a new link. Never two first admins.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from lychgate.authz.context import AuthzContext
from lychgate.authz.device.errors import ApiError
from lychgate.deployment.users import add_user, check_email, check_name
from lychgate.devicesig import public_key_from_raw, unb64url
from lychgate.domain import AuditEvent, Device, OneTimeCode, User
from lychgate.errors import ClientError, Conflict
from lychgate.ids import DeviceId, UserId, new_id
from lychgate.store import Store
from lychgate.tokens import Purpose, code_hash, read_payload
from lychgate.tokens.onetime import MAX_CODE_CHARS


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    """A checked enrollment request (see :func:`check_request`).

    ``user_name`` and ``email`` describe a new admin and matter only for a setup link; what
    is wrong with them is kept in ``setup_problem`` rather than refused at once, so that an
    ordinary link ignores them whatever they hold (it used to refuse an ill-formed address it
    would have ignored anyway).
    """

    code: str
    public_key: bytes
    name: str
    user_name: str | None
    email: str | None
    setup_problem: ClientError | None = None


@dataclass(frozen=True, slots=True)
class Enrolled:
    device: Device
    user: User


def check_request(
    *, code: str, public_key: str, name: str, user_name: str | None, email: str | None
) -> EnrollRequest:
    """Validate a request body without touching the store; ClientError names the field."""
    if not code or len(code) > MAX_CODE_CHARS:
        raise ClientError("is not an enrollment code", field="code")
    raw = unb64url(public_key, field="public_key")
    public_key_from_raw(raw)  # a strong Ed25519 public key, or ClientError
    clean_name = check_name(name)
    problem: ClientError | None = None
    clean_user: str | None = None
    clean_email: str | None = None
    try:
        if user_name is not None:
            try:
                clean_user = check_name(user_name)
            except ClientError as exc:
                raise ClientError(exc.message, field="user_name") from None
        clean_email = check_email(email) if email else None
    except ClientError as exc:
        problem, clean_user, clean_email = exc, None, None
    return EnrollRequest(code, raw, clean_name, clean_user, clean_email, problem)


#: Said to a setup link that stepped down. Not "an admin exists": both racers may have.
RACED = (
    "another setup link was used at the same moment, so this one stepped down; if no admin "
    "exists now, run lychgate init for a new link"
)


#: Said to a request without ``user_name`` whose code is an open setup link (not burnt), as
#: ``lychgate device enroll`` spells it: a CLI older than this error prints the message.
NAME_REQUIRED = (
    "this is an admin setup link: give the new admin's name with --user-name NAME (and --email)"
)


def _refused(message: str = "unknown, used, cancelled or expired enrollment code") -> ApiError:
    return ApiError("code_refused", message, status=409, field="code")


async def enroll(ctx: AuthzContext, request: EnrollRequest, *, ip: str) -> Enrolled:
    """Redeem the code and enroll the device; ApiError ``code_refused`` (409) when refused."""
    store, now = ctx.store, ctx.clock()
    digest = code_hash(request.code)
    # An admin-setup code is tried only when the body could complete it: never burnt by a
    # missing user_name or an e-mail address that is taken. Whether an address is taken is
    # asked only while setup is still open (no admin yet): after, anyone could learn with a
    # made-up code which addresses belong to users.
    # An ill-formed user_name or e-mail address (setup_problem) never tries a setup code
    # either; the code is then tried as an ordinary link, which ignores both.
    email_taken = False
    if request.email and request.user_name is not None and await store.users.count_admins() == 0:
        email_taken = await store.users.get_by_email(request.email) is not None
    if request.user_name is not None and not email_taken:
        record = await store.one_time_codes.redeem(digest, Purpose.ADMIN_SETUP, now)
        if record is not None:
            return await _first_admin(ctx, request, now, ip)
    record = await store.one_time_codes.redeem(digest, Purpose.ENROLL, now)
    if record is None:
        if request.setup_problem is not None:
            raise request.setup_problem  # 400: if it is a setup link, it is not burnt
        if request.user_name is None and await _open_setup_code(store, digest, now):
            raise ApiError("user_name_required", NAME_REQUIRED, status=400, field="user_name")
        if email_taken:
            raise Conflict("a user with this e-mail address exists", field="email")
        raise _refused()
    user = await store.users.get(_user_of(record))
    if user.disabled:
        raise _refused("this user is disabled")
    device = await _add_device(store, user, request, now)
    await _audit(store, now, user, device, ip, via=Purpose.ENROLL)
    return Enrolled(device, user)


async def _open_setup_code(store: Store, digest: bytes, now: datetime) -> bool:
    """Whether ``digest`` is that of an admin-setup code that could still be redeemed, while
    no admin exists. Looked up, not redeemed: the request lacks the new admin's name, and the
    link must survive it. Whoever holds such a code learns only what its own link is; any other
    code (unknown, used, expired, an ordinary link) gets the one ``code_refused`` as before."""
    if await store.users.count_admins() > 0:
        return False
    setup = await store.one_time_codes.pending(Purpose.ADMIN_SETUP, now)
    return any(hmac.compare_digest(code.code_hash, digest) for code in setup)


def _user_of(record: OneTimeCode) -> UserId:
    return UserId(str(read_payload(record)["user_id"]))


async def _first_admin(
    ctx: AuthzContext, request: EnrollRequest, now: datetime, ip: str
) -> Enrolled:
    store = ctx.store
    if await store.users.count_admins() > 0:
        raise _refused("setup is finished: an admin exists")
    assert request.user_name is not None
    user = await add_user(
        store, name=request.user_name, email=request.email, now=now, is_admin=True
    )
    device = await _add_device(store, user, request, now)
    if await store.users.count_admins() > 1:
        # Raced another setup link (see the module docstring): step down. The e-mail address
        # is freed, so that the same person can use it again with a new setup link.
        await store.users.update(user.id, is_admin=False, disabled=True, email=None)
        await store.devices.revoke(device.id)
        raise _refused(RACED)
    await _audit(store, now, user, device, ip, via=Purpose.ADMIN_SETUP)
    return Enrolled(device, user)


async def _add_device(store: Store, user: User, request: EnrollRequest, now: datetime) -> Device:
    device = Device(
        id=DeviceId(new_id("dev_")),
        user_id=user.id,
        kind="device_key",
        name=request.name,
        public_key=request.public_key,
        credential_id=None,
        sign_count=0,
        created_at=now,
        last_used_at=None,
        revoked=False,
    )
    await store.devices.add(device)
    return device


async def _audit(
    store: Store, now: datetime, user: User, device: Device, ip: str, *, via: str
) -> None:
    await store.audit.append(
        AuditEvent(
            None,
            now,
            "device.enrolled",
            user.id,
            device.id,
            ip or None,
            {"device": device.id, "via": via, "admin": "yes" if user.is_admin else "no"},
        )
    )
