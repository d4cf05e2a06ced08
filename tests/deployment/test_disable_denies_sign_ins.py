"""Disabling a user denies the sign-ins their devices approved that no browser finished, so
that enabling them again brings none back (as it brings back no enrollment link)."""

from __future__ import annotations

from datetime import timedelta

from fixtures.store import T0, make_device, make_login_request, make_user
from lychgate.deployment.users import disable_user, enable_user
from lychgate.domain import LoginStatus, User
from lychgate.ids import LoginRequestId
from lychgate.store import Store

SOON = T0 + timedelta(seconds=10)


async def _approved_by(store: Store, user: User) -> LoginRequestId:
    device = make_device(user.id, kind="device_key", credential_id=None)
    await store.devices.add(device)
    request = make_login_request()
    await store.login_requests.create(request)
    assert await store.login_requests.approve(
        request.id, user_id=user.id, device_id=device.id, now=SOON
    )
    return request.id


async def test_disable_denies_approved_sign_ins_and_enable_brings_none_back(
    store: Store,
) -> None:
    ada, bob = make_user(), make_user()
    for user in (ada, bob):
        await store.users.add(user)
    ada_login = await _approved_by(store, ada)
    bob_login = await _approved_by(store, bob)

    await disable_user(store, ada, SOON)
    assert (await store.login_requests.get(ada_login)).status is LoginStatus.DENIED
    assert (await store.login_requests.get(bob_login)).status is LoginStatus.APPROVED
    (audit,) = await store.audit.list(action_prefix="user.disabled")
    assert audit.details["sign_ins_denied"] == "1"

    await enable_user(store, await store.users.get(ada.id), SOON)
    assert (await store.login_requests.get(ada_login)).status is LoginStatus.DENIED
