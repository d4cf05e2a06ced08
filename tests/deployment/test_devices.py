"""An operator cuts off one lost or stolen device, without disabling its user."""

from __future__ import annotations

import pytest

from fixtures.store import T0, make_device, make_login_request, make_session, make_user
from lychgate.deployment.devices import devices_of, revoke_device
from lychgate.deployment.users import disable_user, enable_user
from lychgate.domain import LoginStatus
from lychgate.errors import NotFound
from lychgate.store import Store


async def test_revoking_a_device_ends_what_it_approved_and_nothing_else(store: Store) -> None:
    ada, bob = make_user(email="ada@example.test"), make_user(email="bob@example.test")
    for user in (ada, bob):
        await store.users.add(user)
    lost, kept = make_device(ada.id), make_device(ada.id, name="laptop")
    theirs = make_device(bob.id)
    for device in (lost, kept, theirs):
        await store.devices.add(device)
    approved = make_session(ada.id, device_id=lost.id)
    other = make_session(ada.id, device_id=kept.id)
    for session in (approved, other):
        await store.sessions.create(session)
    with pytest.raises(NotFound):
        await revoke_device(store, ada, theirs.id, T0)  # never another user's device
    device, ended = await revoke_device(store, ada, lost.id, T0)
    assert (device.id, ended) == (lost.id, [approved.id])
    assert set(await store.sessions.revoked_ids(T0)) == {approved.id}  # the feed ends it
    states = {d.id: d.revoked for d in await devices_of(store, ada)}
    assert states == {lost.id: True, kept.id: False}
    assert (await store.audit.list(limit=1))[0].action == "device.revoked"


async def test_a_revoked_device_stays_revoked_when_its_user_is_enabled_again(
    store: Store,
) -> None:
    # Disabling the user was the only way to cut a device off before, and enabling them
    # brought the stolen device back.
    ada = make_user()
    await store.users.add(ada)
    lost = make_device(ada.id)
    await store.devices.add(lost)
    await revoke_device(store, ada, lost.id, T0)
    await disable_user(store, ada, T0)
    await enable_user(store, await store.users.get(ada.id), T0)
    assert (await store.devices.get(lost.id)).revoked


async def test_revoking_a_device_denies_the_sign_ins_it_approved_at_once(store: Store) -> None:
    # Their status read "approved" until a browser tried to finish (which then refused).
    ada = make_user()
    await store.users.add(ada)
    lost, kept = make_device(ada.id), make_device(ada.id, name="laptop")
    for device in (lost, kept):
        await store.devices.add(device)
    by_lost, by_kept = make_login_request(), make_login_request()
    for request, device in ((by_lost, lost), (by_kept, kept)):
        await store.login_requests.create(request)
        assert await store.login_requests.approve(
            request.id, user_id=ada.id, device_id=device.id, now=T0
        )
    await revoke_device(store, ada, lost.id, T0)
    assert (await store.login_requests.get(by_lost.id)).status is LoginStatus.DENIED
    assert (await store.login_requests.get(by_kept.id)).status is LoginStatus.APPROVED
    assert (await store.audit.list(limit=1))[0].details["sign_ins_denied"] == "1"
