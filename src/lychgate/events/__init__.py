"""The event bus: how authz tells itself, and its other replicas, that something happened.

Publish an :data:`Event`; every subscriber (on every replica sharing the database) receives it::

    bus = await open_bus(settings.database_url)
    async with bus.subscribe() as events:
        async for item in events:
            match item:
                case LoginApproved(login_id=lid) if lid == waiting_for: ...
                case Lagged(): ...  # may have missed events: re-read the store

See :mod:`lychgate.events.bus` for the delivery contract and
:mod:`lychgate.events.subscription` for the slow-subscriber policy.
"""

from lychgate.events.bus import EventBus
from lychgate.events.codec import MAX_PAYLOAD_BYTES, EventDecodeError, decode, encode
from lychgate.events.factory import open_bus
from lychgate.events.inprocess import InProcessBus
from lychgate.events.postgres import DEFAULT_CHANNEL, Backoff, PostgresBus
from lychgate.events.subscription import DEFAULT_QUEUE_SIZE, Lagged, Received, Subscription
from lychgate.events.types import (
    ConfigChanged,
    Event,
    LoginApproved,
    LoginDenied,
    OpenApp,
    SessionRevoked,
)

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_QUEUE_SIZE",
    "MAX_PAYLOAD_BYTES",
    "Backoff",
    "ConfigChanged",
    "Event",
    "EventBus",
    "EventDecodeError",
    "InProcessBus",
    "Lagged",
    "LoginApproved",
    "LoginDenied",
    "OpenApp",
    "PostgresBus",
    "Received",
    "SessionRevoked",
    "Subscription",
    "decode",
    "encode",
    "open_bus",
]
