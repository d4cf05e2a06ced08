"""What every authz handler needs, built once at start-up and passed down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lychgate.config import Settings
from lychgate.deployment.secrets import DeploymentSecrets
from lychgate.events import EventBus
from lychgate.store import Store


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuthzContext:
    settings: Settings
    store: Store
    bus: EventBus
    secrets: DeploymentSecrets
    clock: Callable[[], datetime] = field(default=utc_now)
