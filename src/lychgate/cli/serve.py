"""``lychgate serve|gateway|authz``: start the processes."""

from __future__ import annotations

import typer

from lychgate.cli.common import DirOption, err_console


def serve(data_dir: DirOption = None) -> None:
    """Run everything: authz on a unix socket and the gateway in front of it."""
    err_console.print("serve: not available in this build yet")
    raise typer.Exit(1)


def gateway(data_dir: DirOption = None) -> None:
    """Run the gateway (data plane) alone."""
    err_console.print("gateway: not available in this build yet")
    raise typer.Exit(1)


def authz(data_dir: DirOption = None) -> None:
    """Run the authorization server alone."""
    err_console.print("authz: not available in this build yet")
    raise typer.Exit(1)
