"""``lychgate``: the command line entry point. Each command is a few lines over the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperOption

from lychgate import __version__
from lychgate.cli.lazy import Lazy, LazyGroup

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


class _Commands(LazyGroup):
    """Every command, by the module that defines it (loaded only when it runs), and its summary
    for ``--help`` (a test checks it against the command's own help)."""

    lazy: ClassVar[Mapping[str, Lazy]] = {
        "init": Lazy(
            "lychgate.cli.init:init",
            "Create a deployment, or complete one. Never destroys existing keys or data.",
        ),
        "app": Lazy("lychgate.cli.apps:app", "Manage the apps behind the gateway."),
        "user": Lazy("lychgate.cli.users:app", "Manage users."),
        "keys": Lazy("lychgate.cli.keys:app", "Manage token signing keys."),
        "ca": Lazy("lychgate.cli.ca:app", "The internal certificate authority."),
        "token": Lazy("lychgate.cli.tokens:app", "Tokens for scripts and benchmarks."),
        "device": Lazy(
            "lychgate.cli.device:app",
            "The CLI authenticator: enroll, approve sign-ins, open apps.",
        ),
        "serve": Lazy(
            "lychgate.cli.serve:serve",
            "Run everything: authz on a unix socket and the gateway in front of it.",
        ),
        "gateway": Lazy(
            "lychgate.cli.gateway:gateway",
            "Run the gateway (data plane) alone; it follows authz's config feed.",
        ),
        "authz": Lazy("lychgate.cli.serve:authz", "Run the authorization server alone."),
    }


app = typer.Typer(
    cls=_Commands,
    name="lychgate",
    help="Put web apps behind passwordless sign-in approved on a phone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
