"""The portal's event stream: the device says "open this app", the browser goes there.

Theory of operation
-------------------
A signed-in portal page listens on ``GET /.lychgate/api/v1/session/events``. The device routes
publish :class:`~lychgate.events.OpenApp` for the session the device approved, with ``url``
the app host's sign-in start (:mod:`lychgate.gateway.signin_state`), which leads through a
fresh handoff; this stream forwards it as ``{"type": "open", "url": ...}`` and the
page navigates there; while subscribed, the stream counts itself in
:class:`~lychgate.authz.portal.listeners.Listeners`, so that the device learns whether a page
got its ``open``. The URL is checked once more against the origins the gateway serves
(SECURITY.md item 1): a bad one is dropped, never sent to the browser.

The stream ends with ``{"type": "signed_out"}`` when the session is revoked (a
``SessionRevoked`` event) or found dead when re-read: every ``heartbeat`` seconds, and after a
``Lagged`` marker (a revocation event may have been lost). The re-read does not touch the
session: an open portal tab is not activity, so the idle timeout still applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection
from typing import Final

from lychgate.authz.context import AuthzContext
from lychgate.authz.login import sse
from lychgate.authz.portal.listeners import Listeners
from lychgate.authz.portal.session import load_live
from lychgate.events import Lagged, OpenApp, Received, SessionRevoked, Subscription
from lychgate.gateway.admit_redirect import safe_redirect
from lychgate.ids import SessionId

_TIMEOUT: Final = object()
_SIGNED_OUT: Final = {"type": "signed_out"}


async def session_events(
    ctx: AuthzContext,
    session_id: SessionId,
    *,
    origins: Callable[[], Collection[str]],
    listeners: Listeners,
    heartbeat: float = sse.HEARTBEAT,
) -> AsyncGenerator[str, None]:
    """SSE frames for the portal page of ``session_id`` (see the module docstring), counted
    in ``listeners`` while subscribed."""
    async with ctx.bus.subscribe() as events:
        with listeners.listening(session_id):  # subscribed: an open published now reaches us
            yield sse.retry()
            while True:
                item = await _next(events, heartbeat)
                if item is None:
                    return  # the bus closed: authz is stopping; the page reconnects
                if item is _TIMEOUT or isinstance(item, Lagged):
                    if await load_live(ctx, session_id, touch=False) is None:
                        yield sse.frame(_SIGNED_OUT)
                        return
                    if item is _TIMEOUT:
                        yield sse.comment("alive")
                    continue
                if isinstance(item, SessionRevoked) and item.session_id == session_id:
                    yield sse.frame(_SIGNED_OUT)
                    return
                if isinstance(item, OpenApp) and item.session_id == session_id:
                    url = safe_redirect(item.url, origins=origins())
                    if url is not None:
                        yield sse.frame({"type": "open", "url": url})


async def _next(events: Subscription, within: float) -> Received | object | None:
    """The next event, ``_TIMEOUT`` after ``within`` s, or None once the bus has closed."""
    try:
        async with asyncio.timeout(within):
            return await anext(events)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        return _TIMEOUT
