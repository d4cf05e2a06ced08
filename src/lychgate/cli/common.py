"""What every command shares: ``--dir``, loading settings, and turning errors into exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from lychgate.config import Settings, load_settings
from lychgate.errors import ConfigError, LychgateError

T = TypeVar("T")
err_console = Console(stderr=True)
out_console = Console()

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        "-d",
        help="Deployment directory. Default: $LYCHGATE_DATA_DIR, else ~/.local/share/lychgate.",
        envvar="LYCHGATE_DATA_DIR",
        show_default=False,
    ),
]

EXIT_ERROR = 1
EXIT_CONFIG = 2


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    """Load the settings for a deployment. This is the CLI's one read of the environment."""
    return load_settings(data_dir, os.environ, **overrides)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print a Lychgate error as one clear line and exit non-zero, without a traceback."""
    try:
        yield
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    except LychgateError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


def is_tty() -> bool:
    return sys.stdout.isatty()


def print_listing(
    rows: Sequence[T],
    *,
    as_json: bool,
    to_dict: Callable[[T], dict[str, object]],
    columns: Sequence[str],
    cells: Callable[[T], Sequence[str]],
    empty: str,
) -> None:
    """Print ``rows`` as JSON (``--json``) or as a table; ``empty`` when there are none."""
    if as_json:
        typer.echo(json.dumps([to_dict(r) for r in rows], indent=2))
        return
    if not rows:
        out_console.print(empty, highlight=False)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*cells(row))
    out_console.print(table)
