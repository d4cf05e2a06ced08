"""``lychgate init``."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Final

import typer

from lychgate.cli.common import DirOption, environment, reported_errors, say
from lychgate.cli.common_store import now, with_store
from lychgate.cli.users import print_enrollment_link
from lychgate.deployment.enroll import issue_admin_setup_link
from lychgate.deployment.init import prepare_files, prepare_store
from lychgate.deployment.next_steps import ca_export_command, lychgate_command
from lychgate.store.url import backend_of, normalize_url

_STORE_KINDS: Final = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}

RoutingOption = Annotated[
    str | None,
    typer.Option("--routing", help="single-host (default) or subdomains.", show_default=False),
]


def init(
    data_dir: DirOption = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url", help="Where browsers reach the gateway (default http://localhost:8080)."
        ),
    ] = None,
    routing: RoutingOption = None,
    domain: Annotated[
        str | None, typer.Option("--domain", help="Subdomains mode: apps live at SLUG.DOMAIN.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The store, e.g. postgresql://USER@HOST/DB (default: SQLite in the data "
            "directory). Written to lychgate.toml (mode 0600); a password here also lands in "
            "your shell history and, while init runs, in ps: prefer ~/.pgpass.",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="HOST:PORT the gateway listens on (default 127.0.0.1:8080); set it to the "
            "public URL's port when browsers reach the gateway directly.",
            show_default=False,
        ),
    ] = None,
    authz_listen: Annotated[
        str | None,
        typer.Option(
            "--authz-listen",
            help="Where authz listens and gateways reach it: unix:/PATH (default: a socket in "
            "the data directory) or HOST:PORT on a private network, for a cluster.",
            show_default=False,
        ),
    ] = None,
    new_secrets: Annotated[
        bool,
        typer.Option(
            "--new-secrets",
            help="Make a new secrets.json although the database holds a deployment (its "
            "secrets.json is lost everywhere): every node then needs the new file.",
        ),
    ] = False,
) -> None:
    """Create a deployment, or complete one. Never destroys existing keys or data."""
    with reported_errors():
        at = now()
        files = prepare_files(
            data_dir,
            os.environ,
            public_url=public_url,
            routing=routing,
            domain=domain,
            database_url=database_url,
            listen=listen,
            authz_listen=authz_listen,
            now=at,
            new_secrets=new_secrets,
        )
        settings = files.settings
        new_kid = asyncio.run(prepare_store(settings, at, replace_secrets=files.secrets_replaced))
        # A separate step, after the store is ready: a fresh link on every run until an admin
        # exists (links from earlier runs stay valid, and all die with the first admin).
        setup_url = with_store(settings, lambda s: issue_admin_setup_link(s, settings, at))
    say("[bold]Deployment[/] {}", settings.data_dir)
    _row("config", "created" if files.config_created else "kept", "lychgate.toml")
    _row("secrets", "written" if files.secrets_created else "kept", "secrets.json")
    store_kind = _STORE_KINDS[backend_of(normalize_url(settings.effective_database_url.reveal()))]
    _row("store", "ready", store_kind)
    _row("keys", "created" if new_kid else "kept", new_kid or "")
    if files.tls is not None:
        tls = files.tls
        issued = "issued" if tls.server_cert_issued else "kept"
        _row("tls", "created" if tls.ca_created else "kept", f"CA; server certificate {issued}")
        if tls.ca_created:
            say(
                "  Trust the internal CA on your devices: {}",
                ca_export_command(settings, environment()),
            )
    say("Public URL: {} ({})", settings.public_url, settings.routing)
    if setup_url is not None:
        say("[bold]Finish setup:[/] enroll the administrator's device with this link.")
        print_enrollment_link(setup_url, settings, admin_setup=True)
    app_add = "app add --slug SLUG --name NAME --upstream http://127.0.0.1:PORT"
    say("Next: {}", lychgate_command(app_add, settings.data_dir, environment()))


def _row(part: str, state: str, what: str) -> None:
    """A line of the summary, in columns wide enough for their longest word ("created"), so
    that what each part is (a file, the store's kind, a key id) starts in one column."""
    say("  {}", f"{part:<11}{state:<9}{what}".rstrip())
