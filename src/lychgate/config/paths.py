"""Where a deployment lives when ``--dir`` is not given."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "LYCHGATE_DATA_DIR"


def default_data_dir(env: Mapping[str, str]) -> Path:
    """``$LYCHGATE_DATA_DIR``, else ``$XDG_DATA_HOME/lychgate``, else ``~/.local/share/lychgate``.

    ``env`` is passed in (not read from ``os.environ`` here) so that the only read of the
    environment happens at the CLI edge.
    """
    if value := env.get(DATA_DIR_ENV):
        return Path(value).expanduser()
    if xdg := env.get("XDG_DATA_HOME"):
        return Path(xdg).expanduser() / "lychgate"
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".local" / "share" / "lychgate"
