"""Where a deployment lives when ``--dir`` is not given, and what a data directory path may be."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

from lychgate.errors import ConfigError

DATA_DIR_ENV = "LYCHGATE_DATA_DIR"


def default_data_dir(env: Mapping[str, str]) -> Path:
    """``$LYCHGATE_DATA_DIR``, else ``$XDG_DATA_HOME/lychgate``, else ``~/.local/share/lychgate``.

    ``env`` is passed in (not read from ``os.environ`` here) so that the only read of the
    environment happens at the CLI edge. An empty ``LYCHGATE_DATA_DIR`` counts as unset.
    """
    if value := env.get(DATA_DIR_ENV):
        return Path(value).expanduser()
    if xdg := env.get("XDG_DATA_HOME"):
        return Path(xdg).expanduser() / "lychgate"
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".local" / "share" / "lychgate"


def parse_data_dir(text: str) -> Path:
    """``--dir TEXT`` as a path; ValueError for an empty one (the CLI's option parser).

    ``Path("")`` is ``Path(".")``: ``--dir "$UNSET"`` made a deployment in the current
    directory and narrowed it to 0700. Only the raw text tells the two apart, so the check
    is made where the option is parsed (an empty ``LYCHGATE_DATA_DIR`` counts as unset).
    """
    if not text.strip():
        raise ValueError(
            "an empty data directory path: give a directory, such as --dir ~/lychgate "
            f"(or leave --dir out for the default: ${DATA_DIR_ENV}, else $XDG_DATA_HOME/lychgate, "
            "else ~/.local/share/lychgate)"
        )
    return Path(text)


def resolve_data_dir(data_dir: Path | None, env: Mapping[str, str]) -> Path:
    """The absolute data directory: ``data_dir``, else :func:`default_data_dir`. A ConfigError
    when the path cannot be one (:func:`check_data_dir`), rather than a traceback later."""
    given = data_dir or default_data_dir(env)
    try:
        directory = given.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # no home for "~user"; a symlink loop (3.11)
        raise ConfigError(f"{given}: {_why(exc)}: give another --dir", field="data_dir") from None
    check_data_dir(directory)
    return directory


def check_data_dir(directory: Path) -> None:
    """Refuse a path that is not a directory, or under one that is not: a regular file named
    by ``--dir`` (or above it) ended ``init``, ``serve`` and ``app list`` in a traceback. A
    path that does not exist yet is fine: ``init`` makes it."""
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise ConfigError(_not_a_directory(_file_above(directory)), field="data_dir") from None
    except OSError as exc:
        raise ConfigError(
            f"{directory}: {_why(exc)}: give --dir a directory this user may use",
            field="data_dir",
        ) from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(_not_a_directory(directory), field="data_dir")


def _not_a_directory(path: Path) -> str:
    return f"{path} is not a directory: give --dir (or {DATA_DIR_ENV}) a directory"


def _file_above(directory: Path) -> Path:
    """The nearest ancestor of ``directory`` that exists and is not a directory."""
    for parent in reversed(directory.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return directory


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
