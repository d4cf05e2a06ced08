"""TLS material on disk: the internal CA and the server certificate in one directory.

Layout of ``tls_dir`` (created 0700)::

    ca.pem       the CA certificate; users install it on their devices
    ca.key       the CA private key, 0600
    server.pem   the server certificate (leaf only; the root need not be sent)
    server.key   the server private key, 0600
    .lock        advisory lock held while the directory is being changed

:func:`ensure_tls_material` is idempotent and never destroys a key. Every run:

1. keeps an existing CA as it is. If only ``ca.key`` exists (a run was interrupted between
   the two writes; the key is written first), it finishes the CA around that key. If only
   ``ca.pem`` exists, or the pair does not match, it stops with a :class:`ConfigError` rather
   than guess: devices may trust that certificate.
2. keeps ``server.key``, creating it if missing.
3. re-issues ``server.pem`` only when it is missing or unreadable, was not issued by this CA
   for this key, is not yet valid, expires within ``renew_before`` (30 days by default), or
   its subjectAltName lacks one of the requested names.

All of this is synchronous, blocking file I/O meant for the CLI (``lychgate init``, ``serve``
start-up and ``ca export``), before any event loop runs. Do not call it from async code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from lychgate.errors import ConfigError, UsageError
from lychgate.files import (
    DIR_MODE,
    PRIVATE_MODE,
    PUBLIC_MODE,
    locked,
    restrict_mode,
    write_atomic,
)
from lychgate.tls.ca import (
    CaMaterial,
    create_ca,
    issue_server_cert,
    new_private_key,
    private_key_pem,
    san_names,
)
from lychgate.tls.constraints import not_permitted
from lychgate.tls.hosts import normalize_san

RENEW_BEFORE: Final = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class TlsPaths:
    """Where the TLS files are, and what the last :func:`ensure_tls_material` call changed."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    ca_created: bool = False  # the CLI should tell the user to install the new CA
    server_cert_issued: bool = False  # a running gateway should reload its certificate

    @classmethod
    def in_dir(cls, tls_dir: Path) -> TlsPaths:
        return cls(
            ca_cert=tls_dir / "ca.pem",
            ca_key=tls_dir / "ca.key",
            server_cert=tls_dir / "server.pem",
            server_key=tls_dir / "server.key",
        )


def ensure_tls_material(
    tls_dir: Path,
    hostnames: Sequence[str],
    *,
    now: datetime,
    ca_common_name: str | None = None,
    renew_before: timedelta = RENEW_BEFORE,
    create_ca: bool = True,
) -> TlsPaths:
    """Make sure ``tls_dir`` holds a CA and a server certificate covering ``hostnames``.

    A new CA is name-constrained to ``hostnames`` (see :mod:`lychgate.tls.constraints`) and
    named ``ca_common_name`` (default: "Lychgate CA for <first host>"). Raises
    :class:`ConfigError` when the existing CA cannot serve: mismatched files, expiring within
    ``renew_before``, or constrained to other names; and, with ``create_ca`` off, when there
    is no CA (a running gateway renews, but never makes a CA that no device trusts).
    Blocking; see the module docstring.
    """
    if now.tzinfo is None:
        raise UsageError("now must be timezone-aware", field="now")
    names = list(dict.fromkeys(normalize_san(h) for h in hostnames))
    if not names:
        raise UsageError("no host names to certify", field="hostnames")
    paths = TlsPaths.in_dir(tls_dir)
    tls_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    with locked(tls_dir):
        common_name = ca_common_name or f"Lychgate CA for {names[0].removeprefix('*.')}"[:64]
        if not create_ca and not (paths.ca_cert.exists() and paths.ca_key.exists()):
            raise ConfigError(
                f"the internal CA is not in {tls_dir} (ca.pem and ca.key); run lychgate init",
                field="tls_dir",
            )
        ca, ca_created = _load_or_create_ca(paths, names, now=now, common_name=common_name)
        _check_ca_usable(ca, paths, names, now=now, renew_before=renew_before)
        server_key = _load_key(paths.server_key) if paths.server_key.exists() else None
        if server_key is None:
            server_key = new_private_key()
            _write_key(paths.server_key, server_key)
        issued = False
        if _server_cert_stale(paths.server_cert, ca, server_key, names, now, renew_before):
            leaf = issue_server_cert(ca, names, now, key=server_key)
            write_atomic(
                paths.server_cert, leaf.certificate_pem(), mode=PUBLIC_MODE, overwrite=True
            )
            issued = True
        for key_path in (paths.ca_key, paths.server_key):
            restrict_mode(key_path, PRIVATE_MODE)
    return TlsPaths(
        paths.ca_cert,
        paths.ca_key,
        paths.server_cert,
        paths.server_key,
        ca_created=ca_created,
        server_cert_issued=issued,
    )


def renew_server_cert(tls_dir: Path, hostnames: Sequence[str], now: datetime) -> bool:
    """Re-issue ``server.pem`` from the internal CA if it is due (as ``ensure_tls_material``
    decides), for a running gateway; never creates a CA. Returns whether it issued one.
    Blocking: run it in a thread."""
    return ensure_tls_material(tls_dir, hostnames, now=now, create_ca=False).server_cert_issued


def rotate_ca(tls_dir: Path, hostnames: Sequence[str], *, now: datetime) -> Path:
    """Replace the internal CA with a new one for ``hostnames``, and the server certificate
    with one it issued; for a CA that expires soon, or a deployment whose host names changed
    (a CA is name-constrained to the names it was made for). Blocking.

    The old ``ca.pem`` and ``ca.key`` are kept (renamed with a timestamp, the key still
    0600), never deleted: devices trust the old one until they are given the new one.
    Returns the old certificate's new path. :class:`ConfigError` if there is no CA here.
    """
    paths = TlsPaths.in_dir(tls_dir)
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    kept_cert = tls_dir / f"ca-retired-{stamp}.pem"
    kept_key = tls_dir / f"ca-retired-{stamp}.key"
    if not tls_dir.is_dir():
        raise ConfigError(
            f"there is no internal CA in {tls_dir}; run lychgate init", field="tls_dir"
        )
    with locked(tls_dir):
        if not (paths.ca_cert.exists() and paths.ca_key.exists()):
            raise ConfigError(
                f"there is no internal CA in {tls_dir} (ca.pem and ca.key); run lychgate init",
                field="tls_dir",
            )
        if kept_cert.exists() or kept_key.exists():
            raise ConfigError(f"{kept_cert.name} exists already; try again", field="tls_dir")
        load_ca(tls_dir)  # refuse to retire a pair that does not match: something is wrong
        # The key first: a run stopped between the two leaves ca.pem without its key, which
        # the next run refuses with a clear error, rather than a CA rebuilt around the old key.
        paths.ca_key.rename(kept_key)
        paths.ca_cert.rename(kept_cert)
    ensure_tls_material(tls_dir, hostnames, now=now)
    return kept_cert


def ca_certificate_pem(tls_dir: Path) -> str:
    """The internal CA certificate as PEM text, for ``lychgate ca export``. Blocking.

    Raises :class:`ConfigError` if ``tls_dir`` has no readable CA certificate.
    """
    path = TlsPaths.in_dir(tls_dir).ca_cert
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"there is no internal CA in {tls_dir}; run `lychgate init` first", field="tls_dir"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate", field="tls_dir") from exc
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_ca(tls_dir: Path) -> CaMaterial:
    """Read the CA certificate and key from ``tls_dir`` and check that they match. Blocking."""
    paths = TlsPaths.in_dir(tls_dir)
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        raise ConfigError(f"no internal CA (ca.pem and ca.key) in {tls_dir}", field="tls_dir")
    certificate = _load_cert(paths.ca_cert)
    if certificate is None:
        raise ConfigError(f"{paths.ca_cert} is not a PEM certificate", field="tls_dir")
    key = _load_key(paths.ca_key)
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        raise ConfigError(f"{paths.ca_key} does not match {paths.ca_cert}", field="tls_dir")
    return CaMaterial(certificate, key)


def _load_or_create_ca(
    paths: TlsPaths, names: list[str], *, now: datetime, common_name: str
) -> tuple[CaMaterial, bool]:
    have_cert, have_key = paths.ca_cert.exists(), paths.ca_key.exists()
    if have_cert and have_key:
        return load_ca(paths.ca_cert.parent), False
    if have_cert:
        raise ConfigError(
            f"{paths.ca_cert} exists but {paths.ca_key} does not; restore the key, or move "
            "ca.pem away to make a new CA (devices must then trust the new one)",
            field="tls_dir",
        )
    # The key goes to disk first: if we stop before ca.pem is written, the next run finishes
    # the CA around the same key instead of finding a certificate without one.
    key = _load_key(paths.ca_key) if have_key else new_private_key()
    if not have_key:
        _write_key(paths.ca_key, key)
    ca = create_ca(common_name, now, permitted=names, key=key)
    write_atomic(paths.ca_cert, ca.certificate_pem(), mode=PUBLIC_MODE, overwrite=False)
    return ca, True


def _check_ca_usable(
    ca: CaMaterial, paths: TlsPaths, names: list[str], *, now: datetime, renew_before: timedelta
) -> None:
    try:
        constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise ConfigError(f"{paths.ca_cert} is not a CA certificate", field="tls_dir")
    if ca.certificate.not_valid_after_utc - now < renew_before:
        raise ConfigError(
            f"the internal CA expires on {ca.certificate.not_valid_after_utc:%Y-%m-%d}; run "
            "lychgate ca rotate to make a new one, and install it on your devices",
            field="tls_dir",
        )
    refused = not_permitted(ca.certificate, names)
    if refused:
        raise ConfigError(
            f"the internal CA in {paths.ca_cert.parent} may not certify {', '.join(refused)}: "
            "it is name-constrained to the hosts it was made for. Run lychgate ca rotate "
            "to make a new CA, and install it on your devices again",
            field="tls_dir",
        )


def _server_cert_stale(
    path: Path,
    ca: CaMaterial,
    key: ec.EllipticCurvePrivateKey,
    names: list[str],
    now: datetime,
    renew_before: timedelta,
) -> bool:
    certificate = _load_cert(path) if path.exists() else None
    if certificate is None:
        return True
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        return True
    try:
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return True  # issued by an earlier CA, or not by a CA at all
    if certificate.not_valid_before_utc > now:
        return True
    if certificate.not_valid_after_utc - now < renew_before:
        return True
    return not set(names) <= set(san_names(certificate))


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    # An unreadable key is an error, never a reason to make a new one: that would destroy it.
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key", field="tls_dir") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{path} is not a P-256 (secp256r1) key", field="tls_dir")
    return key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = private_key_pem(key).reveal().encode("ascii")
    write_atomic(path, data, mode=PRIVATE_MODE, overwrite=False)


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
