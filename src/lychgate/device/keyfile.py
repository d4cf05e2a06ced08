"""The device key file: one JSON file, 0600, holding the Ed25519 key and the enrollment record.

Synchronous, blocking file I/O: call it from the CLI, never from a running event loop.

The file is written once at enrollment, and its place is claimed *before* the one-time
enrollment link is spent (:func:`reserve_key_file`): a temporary file, 0600 from its first byte,
in the target directory, with room for the key. Once the server has accepted the new key, that
file is filled and renamed into place, so a crash leaves the old file or the new one, and a bad
``--key`` (a directory, a parent that is a file, no permission, no space) is reported while the
link is still good.

Like OpenSSH with its identity files, we refuse to *read* a key file that anyone but its owner
may read or write: a key that others could read may already be theirs, and saying so is better
than silently using it. The mode is checked on the open descriptor (``fstat``), so the file we
check is the file we read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from lychgate.devicesig import b64url, unb64url
from lychgate.errors import ClientError, ConfigError, Conflict, NotFound
from lychgate.files import DIR_MODE, PRIVATE_MODE, fsync_dir
from lychgate.ids import DeviceId, UserId

KEY_ENV: Final = "LYCHGATE_DEVICE_KEY"
FORMAT: Final = "lychgate-device-key/1"
MAX_KEY_FILE_BYTES: Final = 64 * 1024  # ours are under 1 KiB; anything bigger is not ours
RESERVED_BYTES: Final = 4096  # claimed before enrollment, so a full disk shows up while it can


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What enrollment told us: who this device is and where its server lives. No secrets."""

    device_id: DeviceId
    device_name: str
    user_id: UserId
    user_name: str
    user_email: str | None
    server: str  # the server's public URL (an origin): every call goes there and only there
    enrolled_at: datetime
    ca_file: str | None = None  # the internal CA given at enrollment (``--ca``), if any


@dataclass(frozen=True, slots=True, eq=False)
class KeyFile:
    """A device key and its record. ``repr`` never shows the key; equality is identity (keys
    are not compared)."""

    record: DeviceRecord
    private_key: Ed25519PrivateKey = field(repr=False)

    def public_key_raw(self) -> bytes:
        """The raw 32-byte Ed25519 public key, as enrollment sends it."""
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key (from the OS's CSPRNG, via OpenSSL)."""
    return Ed25519PrivateKey.generate()


def default_key_path(env: Mapping[str, str]) -> Path:
    """``$LYCHGATE_DEVICE_KEY``, else ``$XDG_CONFIG_HOME/lychgate/device.json``, else
    ``~/.config/lychgate/device.json``.

    A relative ``XDG_CONFIG_HOME`` is ignored, as the XDG Base Directory spec requires.
    """
    if value := env.get(KEY_ENV):
        return Path(value).expanduser()
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "lychgate" / "device.json"
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".config" / "lychgate" / "device.json"


def ensure_absent(path: Path) -> None:
    """Raise :class:`Conflict` if ``path`` exists: enrolling must not destroy a key by accident."""
    if path.exists() or path.is_symlink():
        raise Conflict(
            f"{path} already holds a device key; pass --force to replace it, or --key FILE to "
            "use another file. The old device stays enrolled on its server until an admin "
            "runs lychgate user revoke-device",
            field="key",
        )


def save_key_file(path: Path, key_file: KeyFile, *, overwrite: bool) -> None:
    """Write ``key_file`` to ``path``, 0600 and atomically; create the parent directory 0700."""
    with reserve_key_file(path, overwrite=overwrite) as pending:
        pending.commit(key_file)


class PendingKeyFile:
    """A key file's place, claimed by :func:`reserve_key_file` before the key exists.

    It holds an open temporary file next to ``path`` with room for the key, so that
    :meth:`commit`, called once the server has spent the link, has as little left to fail as
    a file system allows: fill a file we already hold, and rename it.
    """

    def __init__(self, path: Path, *, overwrite: bool) -> None:
        self.path = path
        self._overwrite = overwrite
        self._tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        self.kept: Path | None = None  # where the key is on disk, once written
        self._fd = _claim(self._tmp)
        self._committed = False

    def commit(self, key_file: KeyFile) -> None:
        """Write ``key_file`` into the claimed file and rename it to ``path``.

        Raises :class:`ConfigError` (or :class:`Conflict`, should a file have appeared at
        ``path`` meanwhile without ``overwrite``) naming ``key``.
        """
        try:
            _fill(self._fd, _encode(key_file))
        except OSError as exc:
            raise ConfigError(
                f"cannot save the key file {self.path}: {_reason(exc)}", field="key"
            ) from None
        # The key is on disk now, 0600: from here a failure keeps it where it is (the link is
        # spent on it), and says where, rather than deleting the only copy.
        self._committed = True
        self.kept = self._tmp
        try:
            if not self._overwrite:
                ensure_absent(self.path)  # checked again: it may have appeared meanwhile
            os.replace(self._tmp, self.path)
        except (OSError, Conflict) as exc:
            why = _reason(exc) if isinstance(exc, OSError) else str(exc)
            raise ConfigError(
                f"cannot put the key file at {self.path}: {why}; the new key is saved in "
                f"{self._tmp}: move it there (or pass --key {self._tmp} to the other commands)",
                field="key",
            ) from None
        # Durability only: the key is in place and readable whether or not this succeeds.
        with contextlib.suppress(OSError):
            fsync_dir(self.path.parent)

    def discard(self) -> None:
        """Close the claimed file, and remove it unless it became the key file."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if not self._committed:
            self._tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def reserve_key_file(path: Path, *, overwrite: bool) -> Iterator[PendingKeyFile]:
    """Check ``path`` and claim its place before enrolling; discard the claim on the way out.

    Everything that can be found wrong with ``path`` is found here, before the one-time
    enrollment link is spent: a directory there (with or without ``overwrite``), an existing
    key (without it), a parent that cannot be a directory, a directory that refuses new files
    or has no room. The parent is created 0700 if missing. Raises :class:`ConfigError` or
    :class:`Conflict`, naming ``key``.
    """
    _check_target(path, overwrite=overwrite)
    _make_parent(path.parent)
    pending = PendingKeyFile(path, overwrite=overwrite)
    try:
        yield pending
    finally:
        pending.discard()


def _check_target(path: Path, *, overwrite: bool) -> None:
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        raise ConfigError(f"cannot use {path}: {_reason(exc)}", field="key") from None
    if is_dir:  # --force must not mean "replace a directory": it never holds a key
        raise ConfigError(
            f"{path} is a directory; give a file name, such as {path / 'device.json'}",
            field="key",
        )
    if not overwrite:
        ensure_absent(path)


def _make_parent(parent: Path) -> None:
    try:
        parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok covers directories only: something else is there
        raise ConfigError(
            f"{parent} is not a directory; the key file needs one", field="key"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot create {parent} for the key file: {_reason(exc)}", field="key"
        ) from None


def _claim(tmp: Path) -> int:
    """Create ``tmp`` 0600 (never following a link) and claim room for a key in it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, PRIVATE_MODE)
    except OSError as exc:
        raise ConfigError(
            f"cannot write a key file in {tmp.parent}: {_reason(exc)}", field="key"
        ) from None
    try:
        _fill(fd, bytes(RESERVED_BYTES))
    except OSError as exc:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write a key file in {tmp.parent}: {_reason(exc)}", field="key"
        ) from None
    return fd


def _fill(fd: int, data: bytes) -> None:
    """Make the file behind ``fd`` hold exactly ``data``, on disk."""
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], written)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def _reason(exc: OSError) -> str:
    """An OS error in plain words, without the path (the message names it already)."""
    return (exc.strerror or type(exc).__name__).lower()


def load_key_file(path: Path) -> KeyFile:
    """Read a key file, refusing one that others may read or write.

    Raises :class:`NotFound` when there is none, and :class:`ConfigError` (naming ``key``)
    when it is not private, not a regular file, or not a key file.
    """
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang us before the fstat check.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFound(
            f"no device key at {path}; enroll first with `lychgate device enroll URL`",
            field="key",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}", field="key") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file", field="key")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{path} is accessible by other users (mode {mode:04o}); the key may be "
                f"compromised. If it is yours, run `chmod 600 {path}`",
                field="key",
            )
        data = _read_at_most(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"{path} is too large to be a device key file", field="key")
    try:
        return _decode(data)
    except _Invalid as exc:
        raise ConfigError(f"{path} is not a valid device key file: {exc}", field="key") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _encode(key_file: KeyFile) -> bytes:
    r = key_file.record
    raw = key_file.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    document = {
        "format": FORMAT,
        "device_id": r.device_id,
        "device_name": r.device_name,
        "user": {"id": r.user_id, "name": r.user_name, "email": r.user_email},
        "server": r.server,
        "enrolled_at": r.enrolled_at.astimezone(UTC).isoformat(),
        "ca_file": r.ca_file,
        "private_key": b64url(raw),
    }
    return json.dumps(document, indent=2).encode() + b"\n"


class _Invalid(Exception):
    """What is wrong with a key file, in plain words. It names a member, never a value: the
    value may be the key."""


def _decode(data: bytes) -> KeyFile:
    try:
        doc = json.loads(data)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; 64 KiB of "[" nests too deep.
    except (ValueError, RecursionError):
        raise _Invalid("it is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Invalid(f"it is not in the {FORMAT} format")
    user = doc.get("user")
    if not isinstance(user, dict):
        raise _Invalid("user is missing or not an object")
    try:
        enrolled_at = datetime.fromisoformat(_str(doc, "enrolled_at"))
    except ValueError:
        raise _Invalid("enrolled_at is not a date and time") from None
    if enrolled_at.tzinfo is None:
        raise _Invalid("enrolled_at has no time zone")
    record = DeviceRecord(
        device_id=DeviceId(_str(doc, "device_id")),
        device_name=_str(doc, "device_name"),
        user_id=UserId(_str(user, "id", "user.id")),
        user_name=_str(user, "name", "user.name"),
        user_email=_optional_str(user, "email", "user.email"),
        server=_str(doc, "server"),
        enrolled_at=enrolled_at.astimezone(UTC),
        ca_file=_optional_str(doc, "ca_file"),
    )
    try:
        raw = unb64url(_str(doc, "private_key"), field="private_key")
    except ClientError:
        raise _Invalid("private_key is not base64url") from None
    if len(raw) != 32:
        raise _Invalid("private_key is not 32 bytes long")
    return KeyFile(record, Ed25519PrivateKey.from_private_bytes(raw))


def _str(doc: Mapping[str, Any], name: str, label: str | None = None) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{label or name} is missing or not a non-empty string")
    return value


def _optional_str(doc: Mapping[str, Any], name: str, label: str | None = None) -> str | None:
    return None if doc.get(name) is None else _str(doc, name, label)
