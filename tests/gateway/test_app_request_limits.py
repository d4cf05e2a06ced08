"""An app's own request limits: ``max_header_bytes`` and ``max_headers`` (admission, 431) and
``idle_timeout`` (carried to the engine in the Forward)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.world import APPS, NOW, World, handler_for, make_app
from lychgate.gateway.admission import Deny, ToApp, admit, over_app_head_limits
from lychgate.gateway.types import Forward, RequestHead, Respond


def world_with_wiki(**limits: Any) -> World:
    """The single-host world, its ``wiki`` app carrying ``limits``."""
    apps = tuple(make_app("wiki", **limits) if a.slug == "wiki" else a for a in APPS)
    return World("single-host", apps=apps)


def head_of_size(world: World, size: int) -> RequestHead:
    """A request for ``/`` with a token whose head counts exactly ``size`` bytes."""
    base = world.head("/", cookies=[world.token()], headers=(("x-pad", ""),))
    counted = len(base.target) + sum(len(k) + len(v) + 4 for k, v in base.headers)
    pad = size - counted
    assert pad >= 0
    return world.head("/", cookies=[world.token()], headers=(("x-pad", "p" * pad),))


def decide(world: World, head: RequestHead) -> object:
    return admit(head, now=NOW, snapshot=world.snapshot, verifier=world.keyring.public)


def test_a_head_at_the_apps_size_limit_passes_and_one_byte_more_is_431() -> None:
    world = world_with_wiki(max_header_bytes=2048)
    assert isinstance(decide(world, head_of_size(world, 2048)), ToApp)
    refused = decide(world, head_of_size(world, 2049))
    assert isinstance(refused, Deny)
    assert (refused.status, refused.error) == (431, "request_header_fields_too_large")
    assert refused.reason == "request head over the app's max_header_bytes"


def test_more_fields_than_the_app_allows_is_431() -> None:
    world = world_with_wiki(max_headers=8)
    cookie_and_host = 2
    six = tuple((f"x-{i}", "v") for i in range(6))
    assert isinstance(decide(world, world.head(cookies=[world.token()], headers=six)), ToApp)
    seven = (*six, ("x-7", "v"))
    refused = decide(world, world.head(cookies=[world.token()], headers=seven))
    assert isinstance(refused, Deny)
    assert refused.status == 431
    assert len(seven) + cookie_and_host == 9


def test_an_app_without_its_own_limits_takes_any_head_the_listener_took() -> None:
    world = World("single-host")
    many = tuple((f"x-{i}", "v" * 100) for i in range(90))
    assert isinstance(decide(world, world.head(cookies=[world.token()], headers=many)), ToApp)
    assert over_app_head_limits(world.head(headers=many), make_app("wiki")) is None


def test_the_limit_is_the_apps_not_anothers() -> None:
    world = world_with_wiki(max_headers=8)
    many = tuple((f"x-{i}", "v") for i in range(20))
    admin = world.head(cookies=[world.token(app="admin", sub="user-2", adm=True)], headers=many)
    assert isinstance(decide(world, admin), ToApp)  # "admin" sets no limit of its own


def test_without_a_valid_token_the_login_comes_first() -> None:
    # The app is known only from the token in single-host mode: nothing about it is told
    # to a client that has not signed in.
    world = world_with_wiki(max_headers=8)
    many = tuple((f"x-{i}", "v") for i in range(20))
    decision = decide(world, world.head(headers=many))
    assert isinstance(decision, Deny)
    assert decision.status == 401


@pytest.mark.parametrize("idle", [None, 2.5])
def test_the_apps_idle_timeout_reaches_the_engine(idle: float | None) -> None:
    world = world_with_wiki(idle_timeout=idle)
    handler, _ = handler_for(world)
    decision = handler(world.head(cookies=[world.token()]))
    assert isinstance(decision, Forward)
    assert decision.idle_timeout == idle


def test_the_431_page_says_nothing_of_the_limit() -> None:
    world = world_with_wiki(max_headers=8)
    handler, _ = handler_for(world)
    many = tuple((f"x-{i}", "v") for i in range(20))
    answer = handler(world.head(cookies=[world.token()], headers=(*many, ("accept", "text/html"))))
    assert isinstance(answer, Respond)
    assert answer.status == 431
    assert b"too large for this app" in answer.body
    assert b"max_headers" not in answer.body
