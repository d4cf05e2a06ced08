"""A table printed into a pipe is drawn by :func:`plain_table` in one pass, exactly as rich
would have drawn it (rich took 4 s for the 5,000 rows of ``app list`` at that many apps)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from lychgate.cli import common
from lychgate.cli.common import plain_table, rich_table

COLUMNS = ("slug", "name", "upstream", "host", "websockets")
ROWS: list[list[str | Text]] = [
    ["wiki", "The wiki", "http://127.0.0.1:25001", "wiki.example.test", "no"],
    ["a-very-long-slug-of-forty-characters-xyz", "", "unix:/run/app.sock", "", "yes"],
    ["grafana", Text("Grafana (disabled)", "dim"), "https://10.0.0.7:3000", "g.test", "no"],
    ["cjk", "日本語の名前", "http://[::1]:8080", "ünïcødé.test", "no"],
    ["emoji", "🚀 launch ✓", "http://127.0.0.1:1", "x", "no"],
]


def through_rich(columns: tuple[str, ...], rows: list[list[str | Text]]) -> str:
    """What :func:`print_table` printed into a pipe before it drew tables itself."""
    out = io.StringIO()
    console = Console(file=out, soft_wrap=True, markup=False, width=80)
    assert not console.is_terminal
    rich_table(console, columns, rows, ids=("slug",))
    return out.getvalue()


@pytest.mark.parametrize("count", [0, 1, len(ROWS)])
def test_a_piped_table_is_what_rich_drew(count: int) -> None:
    rows = ROWS[:count]
    assert plain_table(COLUMNS, rows) == through_rich(COLUMNS, rows)


def test_a_header_wider_than_its_values() -> None:
    rows: list[list[str | Text]] = [["a", "b"]]
    assert plain_table(("a rather wide header", "x"), rows) == through_rich(
        ("a rather wide header", "x"), rows
    )


@pytest.mark.parametrize("value", ["tab\there", "new\nline", "zero\u200dwidth", "bell\a"])
def test_a_value_that_is_not_printable_is_left_to_rich(value: str) -> None:
    assert plain_table(COLUMNS[:2], [["slug", value]]) is None


printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), max_size=12
)


@given(st.lists(st.tuples(printable, printable), max_size=4))
def test_any_printable_values_come_out_as_rich_draws_them(pairs: list[tuple[str, str]]) -> None:
    rows: list[list[str | Text]] = [[a, b] for a, b in pairs]
    plain = plain_table(("slug", "name"), rows)
    if plain is not None:  # a printable character rich measures otherwise: left to rich
        assert plain == through_rich(("slug", "name"), rows)


def test_a_pipe_that_takes_no_utf8_gets_rich_s_ascii_box(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    ascii_pipe = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(common, "out_console", Console(file=ascii_pipe, markup=False, width=80))
    common.print_table(COLUMNS[:2], [["wiki", "The wiki"]], ids=("slug",))
    ascii_pipe.flush()
    drawn = raw.getvalue().decode("ascii")  # it would have raised UnicodeEncodeError
    assert "wiki" in drawn
    assert "The wiki" in drawn
