"""How long a unix socket path may be, and removing one we stopped listening on.

``sockaddr_un.sun_path`` is 108 bytes on Linux, one of them kept for the terminating NUL that
most clients add (macOS and the BSDs allow 104, which this bound does not cover). A longer
path is not always refused: uvloop cuts it to the first 108 bytes and connects there, to
whatever socket listens at that shorter path. So every path we bind or connect to is checked
here first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

MAX_SOCKET_PATH_BYTES: Final = 107


def socket_path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be a unix socket's address, or None."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        return (
            f"the socket path {os.fspath(path)} is {size} bytes long, but a unix socket path "
            f"may be at most {MAX_SOCKET_PATH_BYTES}"
        )
    return None


def remove_socket(path: str | os.PathLike[str]) -> None:
    """Remove the unix socket at ``path`` once its server has stopped listening there, as
    nginx does its own: one left behind looks like a live server to whoever lists the
    directory (the next start removes it as stale all the same). Anything else is left."""
    with contextlib.suppress(OSError):
        if Path(path).is_socket():
            Path(path).unlink()
