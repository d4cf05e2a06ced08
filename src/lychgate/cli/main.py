"""``lychgate``: the command line entry point. Each command is a few lines over the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperOption

from lychgate import __version__
from lychgate.cli import apps, ca, device, init, keys, serve, tokens, users

_typer_type_shown = TyperOption.display_type_rich


def _flag_type_shown(self: TyperOption, ctx: Any) -> str | None:  # Any: typer's own click
    """The type column of ``--help`` for an option: none for a flag, which takes no value.

    Typer (0.29) shows ``<bool>`` beside every flag, ``--demo <bool>`` and ``--help <bool>``
    included, as if each wanted ``true`` or ``false`` after it (``--demo true`` is refused).
    An option with its own ``metavar`` keeps it."""
    if self.is_flag and self.metavar is None:
        return None
    return _typer_type_shown(self, ctx)


TyperOption.display_type_rich = _flag_type_shown  # type: ignore[method-assign]

app = typer.Typer(
    name="lychgate",
    help="Put web apps behind passwordless sign-in approved on a phone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init.init)
app.add_typer(apps.app, name="app")
app.add_typer(users.app, name="user")
app.add_typer(keys.app, name="keys")
app.add_typer(ca.app, name="ca")
app.add_typer(tokens.app, name="token")
app.add_typer(device.app, name="device")
app.command("serve")(serve.serve)
app.command("gateway")(serve.gateway)
app.command("authz")(serve.authz)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lychgate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Lychgate: a gateway, an authorization server, and a CLI device."""


def main() -> None:
    app()
