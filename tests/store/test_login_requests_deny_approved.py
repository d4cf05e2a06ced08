"""``deny_approved``: an approval taken back when its approver can no longer sign in."""

from __future__ import annotations

from datetime import timedelta

from fixtures.store import T0, make_device, make_login_request, make_session, make_user
from lychgate.domain import Device, LoginRequest, LoginStatus
from lychgate.store import Store

SOON = T0 + timedelta(seconds=30)


async def _device(store: Store) -> Device:
    user = make_user()
    await store.users.add(user)
    device = make_device(user.id)
    await store.devices.add(device)
    return device


async def _approved(store: Store, device: Device, **fields: object) -> LoginRequest:
    request = make_login_request(**fields)
    await store.login_requests.create(request)
    assert await store.login_requests.approve(
        request.id, user_id=device.user_id, device_id=device.id, now=SOON
    )
    return request


async def _status(store: Store, request: LoginRequest) -> LoginStatus:
    return (await store.login_requests.get(request.id)).status


async def test_every_unfinished_approval_of_the_user_is_denied(store: Store) -> None:
    device, other = await _device(store), await _device(store)
    phone = make_device(device.user_id)
    await store.devices.add(phone)
    by_laptop = await _approved(store, device)
    by_phone = await _approved(store, phone)
    # Past its end by the caller's clock, but another machine's clock may say otherwise.
    ended = await _approved(store, device, expires_at=SOON + timedelta(seconds=1))
    pending = make_login_request()
    await store.login_requests.create(pending)
    finished = await _approved(store, device)
    session = make_session(device.user_id, device_id=device.id)
    await store.sessions.create(session)
    assert await store.login_requests.finish(finished.id, session_id=session.id, now=SOON)
    someone_elses = await _approved(store, other)

    denied = await store.login_requests.deny_approved(user_id=device.user_id)

    assert sorted(denied) == sorted([by_laptop.id, by_phone.id, ended.id])
    for request in (by_laptop, by_phone, ended):
        assert await _status(store, request) is LoginStatus.DENIED
    assert await _status(store, pending) is LoginStatus.PENDING
    assert await _status(store, finished) is LoginStatus.FINISHED
    assert await _status(store, someone_elses) is LoginStatus.APPROVED
    assert await store.login_requests.deny_approved(user_id=device.user_id) == []
    # Denied for good: no finish starts from it.
    other_session = make_session(device.user_id, device_id=device.id)
    await store.sessions.create(other_session)
    assert not await store.login_requests.finish(
        by_laptop.id, session_id=other_session.id, now=SOON
    )


async def test_one_request_alone(store: Store) -> None:
    device = await _device(store)
    first, second = await _approved(store, device), await _approved(store, device)
    denied = await store.login_requests.deny_approved(user_id=device.user_id, request_id=first.id)
    assert denied == [first.id]
    assert await _status(store, second) is LoginStatus.APPROVED
    # Another user's id names none of this user's requests.
    other = await _device(store)
    assert (
        await store.login_requests.deny_approved(user_id=other.user_id, request_id=second.id) == []
    )


async def test_only_what_one_device_approved(store: Store) -> None:
    laptop = await _device(store)
    phone = make_device(laptop.user_id)
    await store.devices.add(phone)
    by_laptop, by_phone = await _approved(store, laptop), await _approved(store, phone)
    denied = await store.login_requests.deny_approved(user_id=laptop.user_id, device_id=phone.id)
    assert denied == [by_phone.id]
    assert await _status(store, by_laptop) is LoginStatus.APPROVED
