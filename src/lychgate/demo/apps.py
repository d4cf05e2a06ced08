"""The demo apps as the gateway knows them, and registering them once.

``serve --demo`` registers ``whoami`` and ``chat`` with upstreams on unix sockets in the run
directory (0700, like authz's socket), unless apps with those slugs exist already: the
operator may have changed or repointed them, and registration never overwrites.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from lychgate.deployment.apps import AppSpec, add_app
from lychgate.domain import App
from lychgate.errors import Conflict
from lychgate.ids import AppSlug
from lychgate.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoApp:
    """One demo app: its slug, what the portal shows, and whether it needs WebSockets."""

    slug: str
    name: str
    description: str
    websockets: bool = False

    def socket(self, run_dir: Path) -> Path:
        """Where the app listens: ``<run dir>/demo-<slug>.sock``."""
        return run_dir / f"demo-{self.slug}.sock"

    def spec(self, run_dir: Path) -> AppSpec:
        return AppSpec(
            slug=self.slug,
            name=self.name,
            upstream=f"unix:{self.socket(run_dir)}",
            websockets=self.websockets,
            description=self.description,
        )


WHOAMI: Final = DemoApp("whoami", "Who am I", "Shows and verifies what the gateway asserts")
CHAT: Final = DemoApp("chat", "Chat", "A WebSocket chat room", websockets=True)
DEMO_APPS: Final = (WHOAMI, CHAT)


def demo_apps_among(apps: Iterable[App], run_dir: Path) -> list[str]:
    """The slugs of ``apps`` that are the demo apps, as ``serve --demo`` registered them
    (their upstream is the demo's socket), and enabled: only ``serve --demo`` runs them."""
    demos = {demo.slug: demo.spec(run_dir).upstream for demo in DEMO_APPS}
    return [app.slug for app in apps if app.enabled and demos.get(app.slug) == app.upstream]


@dataclass(frozen=True, slots=True)
class Registration:
    """What :func:`register_demo_apps` did."""

    added: tuple[App, ...]
    kept: tuple[App, ...]  # already registered; left as they were


async def register_demo_apps(store: Store, run_dir: Path, now: datetime) -> Registration:
    """Register the demo apps that are missing (audited, like ``lychgate app add``)."""
    added: list[App] = []
    kept: list[App] = []
    for demo in DEMO_APPS:
        spec = demo.spec(run_dir)
        existing = await store.apps.get_by_slug(AppSlug(demo.slug))
        if existing is None:
            try:
                added.append(await add_app(store, spec, now))
                continue
            except Conflict:  # another serve registered it a moment ago
                existing = await store.apps.get_by_slug(AppSlug(demo.slug))
                if existing is None:
                    raise
        if existing.upstream != spec.upstream:
            log.warning(
                "app %r exists with upstream %s; the demo app listens on %s",
                demo.slug,
                existing.upstream,
                spec.upstream,
            )
        kept.append(existing)
    return Registration(tuple(added), tuple(kept))
