"""The audit log, over both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fixtures.store import T0
from lychgate.domain import AuditEvent
from lychgate.errors import UsageError
from lychgate.ids import DeviceId, UserId
from lychgate.store import Store

ADA = UserId("u_ada")


def _event(action: str, user: UserId | None = None, **details: str) -> AuditEvent:
    return AuditEvent(
        id=None,
        at=T0,
        action=action,
        actor_user_id=user,
        actor_device_id=None,
        ip=None,
        details=details,
    )


async def test_append_assigns_growing_ids_and_round_trips(store: Store) -> None:
    first = await store.audit.append(
        AuditEvent(
            id=None,
            at=T0 + timedelta(seconds=1),
            action="login.approved",
            actor_user_id=ADA,
            actor_device_id=DeviceId("d_phone"),
            ip="2001:db8::1",
            details={"request": "l_1", "app": "wiki"},
        )
    )
    second = await store.audit.append(_event("login.requested"))
    assert first.id is not None
    assert second.id is not None
    assert second.id > first.id
    assert list(await store.audit.list()) == [second, first]


async def test_list_is_newest_first_with_a_limit(store: Store) -> None:
    events = [await store.audit.append(_event(f"e.{i}")) for i in range(5)]
    assert list(await store.audit.list(limit=2)) == [events[4], events[3]]


async def test_list_filters_by_action_prefix_exactly(store: Store) -> None:
    login = await store.audit.append(_event("login.approved"))
    await store.audit.append(_event("device.enrolled"))
    await store.audit.append(_event("LOGIN.upper"))
    await store.audit.append(_event("loginx"))
    assert list(await store.audit.list(action_prefix="login.")) == [login]
    # LIKE wildcards in the prefix match only themselves.
    assert list(await store.audit.list(action_prefix="login%")) == []
    assert list(await store.audit.list(action_prefix="login_")) == []


async def test_list_filters_by_user(store: Store) -> None:
    mine = await store.audit.append(_event("session.revoked", ADA))
    await store.audit.append(_event("session.revoked", UserId("u_other")))
    await store.audit.append(_event("session.revoked"))
    assert list(await store.audit.list(user_id=ADA)) == [mine]
    assert list(await store.audit.list(user_id=ADA, action_prefix="login.")) == []


async def test_the_store_assigns_ids(store: Store) -> None:
    with pytest.raises(UsageError):
        await store.audit.append(replace(_event("x"), id=7))
    assert list(await store.audit.list()) == []
