"""The login request's status as server-sent events: one ``status`` event per change.

Theory of operation
-------------------
The browser waits here while the device decides. The stream subscribes to the event bus
*before* it first reads the store, so an approval can never fall between the read and the
subscription. It then re-reads the row whenever:

* the bus says this request was approved or denied (``LoginApproved``/``LoginDenied``, published
  by the device routes on this replica or, over PostgreSQL, on another one);
* the bus says events may have been lost (``Lagged``);
* ``poll`` seconds pass without either: another process may have approved it with no bus
  between us (the CLI, a replica on SQLite), and expiry is a matter of the clock only.

An event is sent only when the status the browser sees changes (see
:func:`~lychgate.authz.login.service.public_status`). The stream ends once the status is
``approved`` (the next step is the browser's ``finish``) or final (denied, expired, finished),
and when the bus closes (authz is shutting down; the browser reconnects or polls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Final

from lychgate.authz.context import AuthzContext
from lychgate.authz.login import sse
from lychgate.authz.login.service import FINAL, public_status
from lychgate.domain import LoginStatus
from lychgate.errors import NotFound
from lychgate.events import Lagged, LoginApproved, LoginDenied, Subscription
from lychgate.ids import LoginRequestId

POLL: Final = 1.0
STREAM_ENDS: Final = FINAL | {LoginStatus.APPROVED}


async def login_status_events(
    ctx: AuthzContext,
    login_id: LoginRequestId,
    *,
    poll: float = POLL,
    heartbeat: float = sse.HEARTBEAT,
) -> AsyncGenerator[str, None]:
    """SSE frames for ``login_id`` until it is approved or final (see the module docstring)."""
    loop = asyncio.get_running_loop()
    async with ctx.bus.subscribe() as events:
        yield sse.retry()
        last: LoginStatus | None = None
        sent_at = loop.time()
        while True:
            try:
                login = await ctx.store.login_requests.get(login_id)
            except NotFound:
                return
            status = public_status(login, ctx.clock())
            if status != last:
                yield sse.frame({"status": status.value}, event="status")
                last, sent_at = status, loop.time()
            if status in STREAM_ENDS:
                return
            woken = await wait_for_login(events, login_id, poll)
            if woken is None:
                return
            if loop.time() - sent_at >= heartbeat:
                yield sse.comment("waiting")
                sent_at = loop.time()


async def wait_for_login(
    events: Subscription, login_id: LoginRequestId, within: float
) -> bool | None:
    """Wait up to ``within`` s for news of ``login_id``: True on news (or a possible gap),
    False on timeout, None when the bus has closed."""
    try:
        async with asyncio.timeout(within):
            # Cancelling Subscription.__anext__ loses nothing: it dequeues only after waking.
            async for item in events:
                if isinstance(item, Lagged):
                    return True
                if isinstance(item, LoginApproved | LoginDenied) and item.login_id == login_id:
                    return True
            return None
    except TimeoutError:
        return False
