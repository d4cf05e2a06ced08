"""``lychgate ca export``."""

from __future__ import annotations

import typer

from lychgate.cli.common import DirOption, reported_errors, settings_for
from lychgate.deployment.layout import Layout
from lychgate.tls.files import ca_certificate_pem

app = typer.Typer(help="The internal certificate authority.", no_args_is_help=True)


@app.command("export")
def export(data_dir: DirOption = None) -> None:
    """Print the internal CA certificate (PEM) so devices can trust it."""
    with reported_errors():
        settings = settings_for(data_dir)
        pem = ca_certificate_pem(Layout(settings.data_dir).tls_dir)
    typer.echo(pem, nl=not pem.endswith("\n"))
