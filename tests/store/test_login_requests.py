"""The login request state machine, over both backends, including races."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fixtures.store import T0, make_device, make_login_request, make_session, make_user
from lychgate.domain import Device, LoginRequest, LoginStatus
from lychgate.errors import NotFound
from lychgate.ids import LoginRequestId, UserId
from lychgate.store import Store

SOON = T0 + timedelta(seconds=30)


async def _device(store: Store, **user_fields: object) -> Device:
    user = make_user(**user_fields)
    await store.users.add(user)
    device = make_device(user.id)
    await store.devices.add(device)
    return device


async def _request(store: Store, **fields: object) -> LoginRequest:
    request = make_login_request(**fields)
    await store.login_requests.create(request)
    return request


async def _approve(store: Store, request: LoginRequest, device: Device) -> bool:
    return await store.login_requests.approve(
        request.id, user_id=device.user_id, device_id=device.id, now=SOON
    )


async def test_round_trip(store: Store) -> None:
    request = await _request(store, app_slug="wiki", rd="/pages?x=1", number=7)
    assert await store.login_requests.get(request.id) == request


async def test_missing_request_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.login_requests.get(LoginRequestId("nothing"))


async def test_approve_binds_the_user_and_device(store: Store) -> None:
    device = await _device(store)
    request = await _request(store)
    assert await _approve(store, request, device)
    stored = await store.login_requests.get(request.id)
    assert (stored.status, stored.user_id, stored.device_id) == (
        LoginStatus.APPROVED,
        device.user_id,
        device.id,
    )


async def test_approving_twice_fails_the_second_time(store: Store) -> None:
    device = await _device(store)
    request = await _request(store)
    assert await _approve(store, request, device)
    assert not await _approve(store, request, device)


async def test_concurrent_approvals_let_exactly_one_win(store: Store) -> None:
    devices = [await _device(store) for _ in range(5)]
    request = await _request(store)
    results = await asyncio.gather(*(_approve(store, request, d) for d in devices))
    assert sorted(results) == [False] * 4 + [True]
    winner = devices[results.index(True)]
    stored = await store.login_requests.get(request.id)
    assert (stored.user_id, stored.device_id) == (winner.user_id, winner.id)


async def test_approve_at_or_after_expiry_fails(store: Store) -> None:
    device = await _device(store)
    request = await _request(store)
    approved = await store.login_requests.approve(
        request.id, user_id=device.user_id, device_id=device.id, now=request.expires_at
    )
    assert not approved
    assert (await store.login_requests.get(request.id)).status is LoginStatus.PENDING


async def test_approve_just_before_expiry_succeeds(store: Store) -> None:
    device = await _device(store)
    request = await _request(store)
    just_before = request.expires_at - timedelta(microseconds=1)
    assert await store.login_requests.approve(
        request.id, user_id=device.user_id, device_id=device.id, now=just_before
    )


async def test_approve_with_someone_elses_device_fails(store: Store) -> None:
    mine = await _device(store)
    theirs = await _device(store)
    request = await _request(store)
    approved = await store.login_requests.approve(
        request.id, user_id=mine.user_id, device_id=theirs.id, now=SOON
    )
    assert not approved
    assert (await store.login_requests.get(request.id)).status is LoginStatus.PENDING


async def test_approve_with_a_revoked_device_or_disabled_user_fails(store: Store) -> None:
    revoked = await _device(store)
    await store.devices.revoke(revoked.id)
    disabled = await _device(store, disabled=True)
    request = await _request(store)
    assert not await _approve(store, request, revoked)
    assert not await _approve(store, request, disabled)
    assert not await store.login_requests.approve(
        request.id, user_id=UserId("nobody"), device_id=revoked.id, now=SOON
    )


async def test_deny_ends_the_request(store: Store) -> None:
    device = await _device(store)
    request = await _request(store)
    assert await store.login_requests.deny(request.id, now=SOON)
    assert not await store.login_requests.deny(request.id, now=SOON)
    assert not await _approve(store, request, device)
    assert (await store.login_requests.get(request.id)).status is LoginStatus.DENIED


async def test_deny_after_approval_fails(store: Store) -> None:
    device = await _device(store)
    request = await _request(store)
    assert await _approve(store, request, device)
    assert not await store.login_requests.deny(request.id, now=SOON)


async def test_finish_only_from_approved_and_only_once(store: Store) -> None:
    device = await _device(store)
    session = make_session(device.user_id, device_id=device.id)
    await store.sessions.create(session)
    request = await _request(store)
    finish = store.login_requests.finish
    assert not await finish(request.id, session_id=session.id, now=SOON)  # still pending
    assert await _approve(store, request, device)
    results = await asyncio.gather(
        *(finish(request.id, session_id=session.id, now=SOON) for _ in range(4))
    )
    assert sorted(results) == [False] * 3 + [True]
    stored = await store.login_requests.get(request.id)
    assert (stored.status, stored.session_id) == (LoginStatus.FINISHED, session.id)


@pytest.mark.parametrize("change", ["device revoked", "user disabled"])
async def test_finish_refuses_an_approval_whose_device_can_no_longer_sign_in(
    store: Store, change: str
) -> None:
    # Between approval and finish (up to the request's 120 s): a stolen key's holder must
    # not keep an approved request waiting and finish it once the owner revoked the device.
    device = await _device(store)
    session = make_session(device.user_id)
    await store.sessions.create(session)
    request = await _request(store)
    assert await _approve(store, request, device)
    if change == "device revoked":
        assert await store.devices.revoke(device.id)
    else:
        await store.users.update(device.user_id, disabled=True)
    assert not await store.login_requests.finish(request.id, session_id=session.id, now=SOON)
    assert (await store.login_requests.get(request.id)).status is LoginStatus.APPROVED


async def test_finish_after_expiry_fails(store: Store) -> None:
    device = await _device(store)
    session = make_session(device.user_id)
    await store.sessions.create(session)
    request = await _request(store)
    assert await _approve(store, request, device)
    assert not await store.login_requests.finish(
        request.id, session_id=session.id, now=request.expires_at
    )


async def test_expire_marks_stale_pending_requests(store: Store) -> None:
    device = await _device(store)
    stale = await _request(store, expires_at=T0 + timedelta(seconds=10))
    fresh = await _request(store, expires_at=T0 + timedelta(minutes=10))
    approved = await _request(store, expires_at=T0 + timedelta(seconds=40))
    assert await _approve(store, approved, device)
    assert await store.login_requests.expire(T0 + timedelta(minutes=1)) == 1
    assert (await store.login_requests.get(stale.id)).status is LoginStatus.EXPIRED
    assert (await store.login_requests.get(fresh.id)).status is LoginStatus.PENDING
    assert (await store.login_requests.get(approved.id)).status is LoginStatus.APPROVED


async def test_delete_ended_removes_requests_past_their_end_in_any_state(store: Store) -> None:
    device = await _device(store)
    pending = await _request(store, expires_at=T0 + timedelta(seconds=10))
    approved = await _request(store, expires_at=T0 + timedelta(seconds=40))
    assert await _approve(store, approved, device)
    kept = await _request(store, expires_at=T0 + timedelta(minutes=10))
    assert await store.login_requests.delete_ended(T0 + timedelta(minutes=1)) == 2
    for gone in (pending, approved):
        with pytest.raises(NotFound):
            await store.login_requests.get(gone.id)
    assert await store.login_requests.get(kept.id) == kept
