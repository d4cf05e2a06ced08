"""``lychgate serve|authz``: start the processes (``lychgate gateway``: :mod:`.gateway`)."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    environment,
    is_tty,
    note,
    reported_errors,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.cli.gateway import ListenOption, WorkersOption
from lychgate.cli.logs import setup_logging
from lychgate.cli.users import print_enrollment_link
from lychgate.config import Settings
from lychgate.config.load import FromFlag
from lychgate.demo.apps import demo_apps_among
from lychgate.demo.banner import next_steps
from lychgate.demo.bootstrap import bootstrap_demo
from lychgate.demo.runner import check_demo_sockets, prepare_demo, run_demo_apps
from lychgate.deployment.enroll import issue_admin_setup_link, terminal_qr
from lychgate.deployment.init import prepare_files, prepare_store
from lychgate.deployment.layout import Layout
from lychgate.deployment.next_steps import ca_export_command, lychgate_command
from lychgate.deployment.transport import (
    app_hosts_restricted,
    check_apps_transport,
    check_transport,
    internal_ca_names,
    uncovered_apps,
)
from lychgate.supervise import Companion, check_start, get_ready, run_authz, serve_all
from lychgate.tls.files import TlsPaths

DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo",
        help="Also run the demo apps whoami and chat (registering them if needed) and print "
        "how to sign in.",
    ),
]


def serve(
    data_dir: DirOption = None,
    listen: ListenOption = None,
    workers: WorkersOption = None,
    demo: DemoOption = False,
) -> None:
    """Run everything: authz on a unix socket and the gateway in front of it.

    Creates the deployment first if it does not exist, as `lychgate init` does.

    Prints the admin setup link while no admin exists.
    """
    with reported_errors():
        at = now()
        _check_start(data_dir, listen=listen, workers=workers, demo=demo)
        files = prepare_files(data_dir, os.environ, now=at)
        settings = settings_for(files.settings.data_dir, listen=listen, workers=workers)
        # What init does besides the files: the store, its signing key, the secrets' record.
        asyncio.run(prepare_store(settings, at, replace_secrets=files.secrets_replaced))
        check_stored_apps(settings)
        setup_logging(settings.log_level)
        _print_tls_changes(settings, files.tls)
        ready = get_ready(settings)  # the last refusals: only then is a setup link issued
        if demo:
            companions: tuple[Companion, ...] = (_demo(settings),)
        else:
            companions = ()
            _print_setup_link(settings, at)
            _note_idle_demo_apps(settings)
        code = serve_all(ready, companions=companions)
    raise typer.Exit(code)


def _check_start(
    data_dir: Path | None, *, listen: str | None, workers: int | None, demo: bool
) -> None:
    """Refuse a start that would fail before serve creates anything or issues a setup link
    (:func:`~lychgate.supervise.check_start`; with ``--demo``, the demo apps' sockets too).

    The settings are those the deployment will have: a new one's lychgate.toml is written from
    the same environment and defaults."""
    settings = settings_for(data_dir, listen=listen, workers=workers)
    check_start(settings)
    if demo:
        check_demo_sockets(settings)


def _print_tls_changes(settings: Settings, tls: TlsPaths | None) -> None:
    """Say what serve did to the internal CA's files, as init does: a renewal is news."""
    if tls is None:
        return
    if tls.ca_created:
        export = ca_export_command(settings, environment())
        typer.echo(f"Created the internal CA: trust it on your devices ({export})")
    if tls.server_cert_issued:
        typer.echo("Issued a new TLS server certificate from the internal CA")


def _note_idle_demo_apps(settings: Settings) -> None:
    """A serve without --demo runs no demo app, but one an earlier serve --demo registered
    stays in the portal and answers 502: say so, and how to remove it."""
    apps = with_store(settings, lambda store: store.apps.list())
    idle = demo_apps_among(apps, Layout(settings.data_dir).run_dir)
    if idle:
        remove = "; ".join(
            lychgate_command(f"app remove {slug}", settings.data_dir, environment())
            for slug in idle
        )
        note(
            "note: the demo apps {} are registered but not running (serve without --demo), so "
            "they answer 502: run serve --demo, or remove them: {}",
            ", ".join(idle),
            remove,
        )


def _print_setup_link(settings: Settings, at: datetime) -> None:
    """While no admin exists, a fresh admin setup link, as `lychgate init` prints it."""
    url = with_store(settings, lambda store: issue_admin_setup_link(store, settings, at))
    if url is not None:
        typer.echo(f"Lychgate at {settings.public_url}. Finish setup: enroll the admin's device.")
        print_enrollment_link(url, settings, admin_setup=True)
    sys.stdout.flush()  # before the fork: a child must not inherit (and lose) buffered text


def check_stored_apps(settings: Settings) -> None:
    """Refuse to start when a stored app's own host may not be served as the deployment now
    is (``unservable_apps``: authz would leave it out of every snapshot), with an error that
    says how to fix it; warn about one whose host the internal CA's certificate no longer
    covers (the domain changed since). Opens the store only where that can happen, and only in
    a deployment that exists (authz explains a missing one itself)."""
    if not Layout(settings.data_dir).secrets_file.exists():
        return
    restricted = app_hosts_restricted(settings)
    certified = settings.routing == "subdomains" and internal_ca_names(settings) is not None
    if not (restricted or certified):
        return
    apps = with_store(settings, lambda store: store.apps.list())
    if restricted:
        check_apps_transport(settings, apps)
    for slug, why in uncovered_apps(settings, apps).items():
        note("warning: app {}: browsers will refuse its certificate: {}", slug, why)


def _demo(settings: Settings) -> Companion:
    """Set the demo up (store first, on a loop closed before serve forks) and print the
    next steps; return the process that runs the demo apps."""
    plan = prepare_demo(settings)
    start = asyncio.run(bootstrap_demo(settings, now()))
    # A QR code only on a terminal: in a log file or a journal it is a block of noise.
    qr = terminal_qr if is_tty() else None
    sys.stdout.write(next_steps(settings, start, environment(), qr=qr))
    sys.stdout.flush()  # before the fork: a child must not inherit (and lose) buffered text
    return Companion("demo apps", functools.partial(run_demo_apps, plan))


def authz(
    data_dir: DirOption = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="unix:/PATH or HOST:PORT (default: `authz_listen`)."),
    ] = None,
) -> None:
    """Run the authorization server alone."""
    with reported_errors():
        settings = settings_for(data_dir, authz_listen=FromFlag("--listen", listen))
        check_transport(settings)
        check_stored_apps(settings)
        setup_logging(settings.log_level)
        code = run_authz(settings)
    if code:
        note("authz stopped with an error")
    raise typer.Exit(code)
