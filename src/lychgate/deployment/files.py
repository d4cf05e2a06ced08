"""Small, safe file writes for deployment material (synchronous: call off the event loop)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600 from the first byte.

    The temporary file is created with ``O_EXCL`` and mode 0600, so the secret is never
    readable by others, not even briefly; ``os.replace`` makes the switch atomic.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_new_text(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` only if it does not exist yet. Returns whether it wrote."""
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        return False
    return True
