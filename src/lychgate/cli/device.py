"""``lychgate device``: the CLI authenticator."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The CLI authenticator: enroll, approve sign-ins, open apps.", no_args_is_help=True
)
