"""``lychgate ca export|rotate``."""

from __future__ import annotations

from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    environment,
    note,
    reported_errors,
    say,
    settings_for,
)
from lychgate.cli.common_store import now, require_deployment
from lychgate.config import Settings
from lychgate.deployment.layout import Layout
from lychgate.deployment.next_steps import ca_export_command
from lychgate.deployment.transport import internal_ca_names
from lychgate.errors import ConfigError
from lychgate.tls.files import ca_certificate_pem, rotate_ca

app = typer.Typer(help="The internal certificate authority.", no_args_is_help=True)


def certified_names(settings: Settings) -> list[str]:
    """The host names the internal CA certifies; a ConfigError where the deployment has no
    internal CA to export or rotate. Said before looking for the CA's files: "run lychgate
    init" would send a plain-HTTP deployment in a circle, as init makes no CA there."""
    names = internal_ca_names(settings)
    if names is None:
        if settings.tls_cert is not None:
            why = "it serves your own certificate (tls_cert): devices trust that one's issuer"
        else:
            why = f"its public_url ({settings.public_url}) is plain HTTP, and only https has one"
        raise ConfigError(f"this deployment does not use the internal CA: {why}")
    return names


@app.command("export")
def export(data_dir: DirOption = None) -> None:
    """Print the internal CA certificate (PEM) so devices can trust it."""
    with reported_errors():
        settings = settings_for(data_dir)
        require_deployment(settings)  # a mistyped --dir is not "plain HTTP"
        certified_names(settings)
        pem = ca_certificate_pem(Layout(settings.data_dir).tls_dir)
    typer.echo(pem, nl=not pem.endswith("\n"))


@app.command("rotate")
def rotate(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DirOption = None,
) -> None:
    """Replace the internal CA with a new one, and the server certificate with one it signs.

    For a CA that expires soon, or after public_url, routing or domain changed.

    A CA may certify only the host names it was made for.

    Every device must then trust the new CA (lychgate ca export).

    The old CA's files stay in the tls directory, renamed.

    A running gateway serves the new certificate within a minute.
    """
    with reported_errors():
        settings = settings_for(data_dir)
        require_deployment(settings)
        names = certified_names(settings)
        if not yes and not typer.confirm(
            "Devices that trust the current CA will stop trusting this server until they "
            "are given the new one. Replace the CA?",
            default=False,
        ):
            note("nothing changed: the internal CA was not replaced")
            raise typer.Exit(1)
        tls_dir = Layout(settings.data_dir).tls_dir
        kept = rotate_ca(tls_dir, names, now=now())
    say("new internal CA for {}; the old one is kept as {}", ", ".join(names), kept.name)
    say("Trust the new CA on your devices: {}", ca_export_command(settings, environment()))
