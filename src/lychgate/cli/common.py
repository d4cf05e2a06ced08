"""What every command shares: ``--dir``, loading settings, and turning errors into exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from lychgate.config import Settings, load_settings
from lychgate.errors import ConfigError, LychgateError

T = TypeVar("T")
# soft_wrap: an error is one line, also in a log file or a pipe, where rich would otherwise
# break it at 80 columns.
err_console = Console(stderr=True, soft_wrap=True)
out_console = Console()

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        "-d",
        help="Deployment directory. Default: $LYCHGATE_DATA_DIR, else $XDG_DATA_HOME/lychgate, "
        "else ~/.local/share/lychgate.",
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
    ids: Collection[str] = (),
) -> None:
    """Print ``rows`` as JSON (``--json``) or as a table; ``empty`` when there are none.
    The ``ids`` columns are never cut (:func:`print_table`)."""
    if as_json:
        typer.echo(json.dumps([to_dict(r) for r in rows], indent=2))
        return
    if not rows:
        out_console.print(empty, highlight=False)
        return
    print_table(columns, [cells(r) for r in rows], ids=ids)


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[str | Text]], *, ids: Collection[str] = ()
) -> None:
    """Print a table in which no value is lost to a narrow terminal or a pipe (80 columns).

    The ``ids`` columns keep their full width on one line, because other commands take those
    values and an id cut to ``GMo42dxvJ…`` (or folded over two lines) cannot be copied; where
    even that is wider than the terminal, the line is printed whole (not cropped) for the
    terminal to wrap. The other columns fold long values onto more lines rather than end them
    with an ellipsis.
    """
    table = Table(*(_column(name, i, rows, name in ids) for i, name in enumerate(columns)))
    for row in rows:
        table.add_row(*row)
    out_console.print(table, crop=False)


def _column(header: str, index: int, rows: Sequence[Sequence[str | Text]], is_id: bool) -> Column:
    if not is_id:
        return Column(header, overflow="fold")
    widest = max((cell_len(str(row[index])) for row in rows), default=0)
    return Column(header, no_wrap=True, overflow="fold", min_width=max(widest, cell_len(header)))
