"""Crash-safe writes of small files (keys, secrets, certificates), and a directory lock.

Synchronous, blocking file I/O: call it from the CLI, never from a running event loop.

A file is written to a temporary name in the same directory, flushed to disk, then renamed over
the target with :func:`os.replace`, which POSIX makes atomic: a reader (or a crash) sees the old
file or the new one, never half of one. The temporary file is created with its final mode by
:func:`os.open`, so a private key is 0600 from its first byte instead of being ``chmod``-ed after
a window in which it was world-readable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from lychgate.errors import UsageError

PRIVATE_MODE: Final = 0o600
PUBLIC_MODE: Final = 0o644
DIR_MODE: Final = 0o700


def write_atomic(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically, creating it with ``mode`` (less the umask).

    With ``overwrite=False`` an existing ``path`` is never replaced: that is how key files are
    written, so a bug cannot destroy a key. Call it while holding :func:`locked`.
    """
    if not overwrite and path.exists():
        raise UsageError(f"refusing to overwrite {path}")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def restrict_mode(path: Path, mode: int = PRIVATE_MODE) -> None:
    """Remove permission bits beyond ``mode`` from an existing file (never adds any)."""
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        os.chmod(path, current & mode)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``directory`` (via ``directory/.lock``).

    Two ``lychgate`` processes starting at once must not both decide a key is missing and
    race to create it.
    """
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def fsync_dir(directory: Path) -> None:
    """Put ``directory``'s entries on disk: a rename into it is durable only then."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
