"""What every command shares: ``--dir``, loading settings, turning errors into exit codes, and
printing, where data (names, paths, URLs) is always text and never Rich markup."""

from __future__ import annotations

import json
import os
import string
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from lychgate.config import Settings, load_settings
from lychgate.config.paths import parse_data_dir
from lychgate.errors import ConfigError, LychgateError

T = TypeVar("T")
# soft_wrap: a line is printed as one line, also in a log file or a pipe, where rich would
# otherwise break it at 80 columns (an enrollment link broken by a newline is no link).
# markup=False: what is printed is mostly data (names, ids, paths, URLs), and "[/]" in a name
# must be shown as it is, never parsed; our own styling goes through :func:`say` and :func:`note`.
err_console = Console(stderr=True, soft_wrap=True, markup=False)
out_console = Console(soft_wrap=True, markup=False)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        "-d",
        help="Deployment directory. Default: $LYCHGATE_DATA_DIR, else $XDG_DATA_HOME/lychgate, "
        "else ~/.local/share/lychgate.",
        envvar="LYCHGATE_DATA_DIR",
        show_default=False,
        parser=parse_data_dir,  # an empty --dir is refused, not taken for "."
    ),
]

EXIT_ERROR = 1
EXIT_CONFIG = 2


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    """Load the settings for a deployment. This and :func:`environment` are the CLI's reads of
    the environment."""
    return load_settings(data_dir, os.environ, **overrides)


def environment() -> Mapping[str, str]:
    """The environment, for what is passed down from the edge, such as the printed next
    steps, which give ``--dir`` only where the deployment is not in the default directory
    (:func:`~lychgate.deployment.init_options.lychgate_command`)."""
    return os.environ


class _FieldsAside(string.Formatter):
    """``str.format`` that sets every value aside (after its conversion and format spec, such
    as ``{!r}`` or ``{:%H:%M}``) and leaves a token in its place, so that the template alone is
    read as markup and the values never are: escaping them left ``[/]``'s neighbours to Rich's
    backslash rules (a name ending in ``\\`` lost one)."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def format_field(self, value: Any, format_spec: str) -> str:
        self.values.append(super().format_field(value, format_spec))
        return _token(len(self.values) - 1)


def _token(index: int) -> str:
    return f"\ue000{index}\ue001"  # private-use characters: no markup, and not in templates


def styled(template: str, /, *values: object, **named: object) -> Text:
    """``template`` is our own Rich markup (``"added [bold]{}[/]"``); ``values`` fill its
    ``{}`` as plain text, in the style the template gives them there. The one way data meets
    markup: a user, device or app name is chosen by someone else, and one with ``[/]`` in it
    crashed every command that printed it."""
    aside = _FieldsAside()
    marked = Text.from_markup(aside.vformat(template, values, named))
    out, at = Text(), 0
    for index, value in enumerate(aside.values):
        token = _token(index)
        start = marked.plain.index(token, at)
        out.append_text(marked[at:start])
        end = start + len(token)
        piece = Text(value, style=marked.style)
        for span in marked.spans:
            if span.start <= start and end <= span.end:
                piece.stylize(span.style)
        out.append_text(piece)
        at = end
    out.append_text(marked[at:])
    return out


def say(template: str, /, *values: object, **named: object) -> None:
    """Print a line of the command's output (:func:`styled`)."""
    out_console.print(styled(template, *values, **named))


def note(template: str, /, *values: object, **named: object) -> None:
    """Print a note, warning or error on stderr (:func:`styled`), keeping stdout for results."""
    err_console.print(styled(template, *values, **named))


@contextmanager
def reported_errors() -> Iterator[None]:
    """Print a Lychgate error as one clear line and exit non-zero, without a traceback."""
    try:
        yield
    except ConfigError as exc:
        note("[bold red]configuration error:[/] {}", exc)
        raise typer.Exit(EXIT_CONFIG) from None
    except LychgateError as exc:
        note("[bold red]error:[/] {}", exc)
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
    """Print a table in which no value is lost to a narrow terminal or a pipe.

    A ``str`` cell is data and shown as it is (no markup); a :class:`Text` cell keeps its style.

    Not on a terminal (a pipe, a file), every row is one line at the table's natural width, for
    grep and cut: rich would otherwise fit it to 80 columns and fold ``127.0.0.1`` over two.

    On a terminal, the ``ids`` columns keep their full width on one line, because other
    commands take those values and an id cut to ``GMo42dxvJ…`` (or folded over two lines)
    cannot be copied; where even that is wider than the terminal, the line is printed whole
    (not cropped) for the terminal to wrap. The other columns fold long values onto more lines
    rather than end them with an ellipsis.
    """
    # Into a pipe that takes UTF-8 (elsewhere rich draws the box in ASCII)
    if not out_console.is_terminal and out_console.encoding.startswith("utf"):
        plain = plain_table(columns, rows)
        if plain is not None:
            out_console.file.write(plain)
            return
    rich_table(out_console, columns, rows, ids=ids)


def rich_table(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str | Text]],
    *,
    ids: Collection[str] = (),
) -> None:
    """Print the table on ``console`` through rich's layout (:func:`print_table`)."""
    cells = [[Text(c) if isinstance(c, str) else c for c in row] for row in rows]
    table = Table(*(_column(name, i, cells, name in ids) for i, name in enumerate(columns)))
    for row in cells:
        table.add_row(*row)
    if not console.is_terminal:
        table.width = _natural_width(console, table, cells)
    console.print(table, crop=False)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str | Text]]) -> str | None:
    """The table as rich draws it into a pipe at its natural width (:func:`print_table`),
    drawn in a single pass: rich measured and laid out each cell several times over, 4 s for
    the 5,000 rows of ``app list`` at that many apps. None where a value holds a character
    that is not printable (a tab, a newline, a zero-width joiner), whose width only rich's
    own layout gets right."""
    texts = [[c.plain if isinstance(c, Text) else c for c in row] for row in rows]
    if not all(value.isprintable() for row in texts for value in row):
        return None
    widths = [cell_len(name) for name in columns]
    for row in texts:
        widths = [max(w, cell_len(value)) for w, value in zip(widths, row, strict=True)]

    def rule(left: str, line: str, cross: str, right: str) -> str:
        return left + cross.join(line * (w + 2) for w in widths) + right + "\n"

    def line(values: Sequence[str], bar: str) -> str:
        padded = (f" {v}{' ' * (w - cell_len(v))} " for v, w in zip(values, widths, strict=True))
        return bar + bar.join(padded) + bar + "\n"

    out = [rule("┏", "━", "┳", "┓"), line(columns, "┃"), rule("┡", "━", "╇", "┩")]
    out.extend(line(row, "│") for row in texts)
    out.append(rule("└", "─", "┴", "┘"))
    return "".join(out)


def _natural_width(console: Console, table: Table, rows: Sequence[Sequence[Text]]) -> int:
    """The width at which ``table`` folds no cell, as rich measures it given room enough: the
    widest value of each column side by side, and more than its borders and padding take."""
    widest = [
        max([cell_len(str(column.header)), *(row[i].cell_len for row in rows)])
        for i, column in enumerate(table.columns)
    ]
    room = sum(widest) + 4 * len(widest) + 1
    return Measurement.get(console, console.options.update_width(room), table).maximum


def _column(header: str, index: int, rows: Sequence[Sequence[Text]], is_id: bool) -> Column:
    if not is_id:
        return Column(header, overflow="fold")
    widest = max((row[index].cell_len for row in rows), default=0)
    return Column(header, no_wrap=True, overflow="fold", min_width=max(widest, cell_len(header)))
