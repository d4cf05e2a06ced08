"""What ``serve --demo`` does to the store before anything runs.

It completes the deployment (migrations and the first signing key, as ``lychgate init``
does), registers the demo apps that are missing, and, while no admin exists, issues a fresh
admin setup link for the next-steps banner. It runs on a short-lived loop of its own, before
``serve`` forks (the loop is closed by then) and after its last checks
(:func:`~lychgate.supervise.get_ready`): a start that is refused issues no link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lychgate.config import Settings
from lychgate.demo.apps import Registration, register_demo_apps
from lychgate.deployment.enroll import issue_admin_setup_link
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.layout import Layout
from lychgate.store import open_store


@dataclass(frozen=True, slots=True)
class DemoStart:
    """What the bootstrap did, for the banner."""

    registration: Registration
    setup_link: str | None  # set while no admin exists


async def bootstrap_demo(settings: Settings, now: datetime) -> DemoStart:
    """Migrate, ensure a signing key, register the demo apps, and issue a setup link if needed."""
    async with await open_store(settings.effective_database_url.reveal()) as store:
        await ensure_signing_key(store.signing_keys, now)
        registration = await register_demo_apps(store, Layout(settings.data_dir).run_dir, now)
        link = await issue_admin_setup_link(store, settings, now)
    return DemoStart(registration, link)
