"""TLS contexts: the listener's (with SNI, reloadable) and the one that verifies upstreams.

Building a context reads certificate files, which blocks: do it at start-up, before the loop
runs, or in a thread (``asyncio.to_thread``).

The listener picks a certificate by the client's server name (RFC 6066 section 3): an exact
name first, then a one-label wildcard (``*.example.com``), else the default pair. The name the
client sent is recorded on the TLS object and exposed as ``RequestHead.sni``, so that routing
can refuse a Host that disagrees with it (SECURITY.md item 4).

Certificates are renewed while the gateway runs (certbot, or ``lychgate init`` within 30 days
of the internal certificate's expiry). :class:`ServerCertificates` loads the files again when
:meth:`~ServerCertificates.reload` finds that they changed. The listener keeps its own context;
OpenSSL calls the SNI callback on every handshake, with or without a server name, and the
callback hands the handshake the newest context. New connections get the new certificate, and
open ones keep the one they were made with. Files caught half-written, a key that does not
match its certificate, a certificate that is not valid now (expired, or not yet valid) and
one that no longer names the public host (nor, in subdomains mode, the app domain or the
wildcard under it that the certificate in use named) are refused with a warning: the previous
certificates stay in use, and the next check tries again. Served, any of them would fail
every new handshake while a good pair was still at hand.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from lychgate.errors import ConfigError
from lychgate.tls.context import client_ssl_context, server_ssl_context

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

log = logging.getLogger(__name__)

_SNI_ATTR = "lychgate_sni"
_QUIET_ATTR = "lychgate_quiet_sni"
_QUIET_EVERY = 60.0  # seconds between log lines about undecodable server names
_MISSING = (-1, -1, -1)


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate chain file and its private key file (PEM)."""

    cert_file: Path
    key_file: Path


def normalize_server_name(name: str) -> str:
    """Lower-case, without a trailing dot: how names are compared."""
    return name.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class _Loaded:
    """One generation of contexts, and what the files were when it was read."""

    default: ssl.SSLContext
    by_name: dict[str, ssl.SSLContext]
    stamp: tuple[tuple[int, int, int], ...]
    leaves: tuple[x509.Certificate, ...]  # each pair's first certificate, the default's first

    @property
    def not_after(self) -> datetime:
        """The earliest expiry among the leaf certificates."""
        return min(leaf.not_valid_after_utc for leaf in self.leaves)


class ServerCertificates:
    """The listener's certificates by server name, reloaded when their files change.

    ``by_name`` keys are host names or ``*.domain`` wildcards. :attr:`context` is the one to
    give the listener. Construction blocks (reads files) and raises :class:`ConfigError` when a
    pair cannot be loaded.
    """

    def __init__(
        self,
        default: CertPair,
        by_name: Mapping[str, CertPair] | None = None,
        *,
        hosts: Collection[str] = (),
        also: Collection[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``hosts``: names the default certificate must cover for a renewal to be taken (the
        public host); at start-up, one it does not cover, or a certificate not valid yet, is
        a warning (the operator chose these files; a renewal is refused instead).
        ``also``: names a renewal must cover if the certificate at start-up covers them (in
        subdomains mode, the app domain and a name under it: the wildcard the apps need)."""
        self._default = default
        self._clock = clock
        self._by_name = {normalize_server_name(n): p for n, p in (by_name or {}).items()}
        self._loaded = self._load(self._stamp())
        first = self._loaded.leaves[0]
        kept = [h for h in also if certificate_covers(first, h)]
        self._hosts = tuple(dict.fromkeys(normalize_server_name(h) for h in (*hosts, *kept)))
        self._refused: tuple[tuple[int, int, int], ...] | None = None
        self.context = self._loaded.default
        self.context.sni_callback = self._choose
        self._warn_at_start(hosts)

    def _warn_at_start(self, hosts: Collection[str]) -> None:
        """Say what browsers will refuse in the certificates chosen (an expired one is
        :class:`~lychgate.gateway.cert_reload.CertificateReloader`'s to say, and to repeat)."""
        now = self._clock()
        for pair, leaf in zip(self._pairs(), self._loaded.leaves, strict=True):
            if now < leaf.not_valid_before_utc:
                log.warning(
                    "the TLS certificate %s is not valid until %s: browsers refuse it until then",
                    pair.cert_file,
                    leaf.not_valid_before_utc.isoformat(),
                )
        missing = [h for h in hosts if not certificate_covers(self._loaded.leaves[0], h)]
        if missing:
            log.warning(
                "the TLS certificate %s does not name %s, which this gateway serves: browsers "
                "will refuse it there",
                self._default.cert_file,
                ", ".join(missing),
            )

    @property
    def not_after(self) -> datetime:
        """When the first of the certificates in use expires."""
        return self._loaded.not_after

    def reload(self) -> bool:
        """Load the files again if they changed since the last load. Blocks.

        True when new certificates are now in use; False when nothing changed, or when the
        changed files could not be loaded (logged once per change; the old ones stay).
        """
        stamp = self._stamp()
        if stamp in (self._loaded.stamp, self._refused):
            return False
        try:
            loaded = self._load(stamp)
            self._check_renewal(loaded)
        except ConfigError as exc:
            self._refused = stamp
            log.warning(
                "TLS certificates changed but were not loaded, still serving the old: %s", exc
            )
            return False
        self._loaded = loaded
        self._refused = None
        log.info("TLS certificates reloaded; the first expires %s", loaded.not_after.isoformat())
        return True

    def _check_renewal(self, loaded: _Loaded) -> None:
        """Refuse renewed certificates that would fail every handshake (module docstring)."""
        now = self._clock()
        for pair, leaf in zip(self._pairs(), loaded.leaves, strict=True):
            start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
            if not start <= now < end:
                raise ConfigError(
                    f"{pair.cert_file} is valid from {start.isoformat()} to {end.isoformat()}, "
                    "not now",
                    field="tls",
                )
        default = loaded.leaves[0]
        missing = [h for h in self._hosts if not certificate_covers(default, h)]
        if missing:
            raise ConfigError(
                f"{self._default.cert_file} does not name {', '.join(missing)}, which this "
                "gateway serves (restart the gateway to serve it anyway)",
                field="tls",
            )

    def _pairs(self) -> list[CertPair]:
        return [self._default, *self._by_name.values()]

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        """Modification time, size and inode of every file: a change in any is a change."""
        stamps = []
        for pair in self._pairs():
            for path in (pair.cert_file, pair.key_file):
                try:
                    st = os.stat(path)
                except OSError:
                    stamps.append(_MISSING)
                else:
                    stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def _load(self, stamp: tuple[tuple[int, int, int], ...]) -> _Loaded:
        # One hardened server context per pair (lychgate.tls.context: TLS >= 1.2, AEAD, ALPN).
        default = server_ssl_context(self._default.cert_file, self._default.key_file)
        by_name = {
            name: server_ssl_context(pair.cert_file, pair.key_file)
            for name, pair in self._by_name.items()
        }
        if by_name:
            # A resumed TLS 1.3 session shows no certificate, and every session here is made
            # with the listener's context, whichever pair the SNI callback chose: one made for
            # a name would be resumed under another whose certificate it never saw (RFC 6066
            # section 3 forbids). So no tickets where there is more than one pair. (TLS 1.2's
            # session cache, which Python gives no switch for, may still resume one; the
            # client then gets what a client sending no name gets: the first certificate.)
            for context in (default, *by_name.values()):
                context.num_tickets = 0
        leaves = tuple(_leaf(pair.cert_file) for pair in self._pairs())
        return _Loaded(default, by_name, stamp, leaves)

    def _choose(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        loaded = self._loaded
        chosen: ssl.SSLContext | None = None
        if server_name is not None:
            name = normalize_server_name(server_name)
            setattr(ssl_object, _SNI_ATTR, name)
            chosen = loaded.by_name.get(name)
            if chosen is None and "." in name:
                chosen = loaded.by_name.get("*." + name.split(".", 1)[1])
        if chosen is None:
            chosen = loaded.default
        if chosen is not self.context:
            ssl_object.context = chosen


def _leaf(cert_file: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read TLS certificate {cert_file}: {exc}", field="tls") from exc


def certificate_covers(cert: x509.Certificate, host: str) -> bool:
    """Whether ``cert``'s subject alternative names cover ``host`` as a browser checks them
    (RFC 6125): an IP address among its addresses, or a name among its names, exactly or by
    a wildcard for the leftmost label alone."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return address in names.get_values_for_type(x509.IPAddress)
    host = normalize_server_name(host)
    parent = host.partition(".")[2]
    for name in names.get_values_for_type(x509.DNSName):
        name = normalize_server_name(name)
        if name == host or (parent and name == f"*.{parent}"):
            return True
    return False


def server_context(
    default: CertPair, by_name: Mapping[str, CertPair] | None = None
) -> ssl.SSLContext:
    """A listener context serving ``default``, or the pair in ``by_name`` matching the SNI,
    never reloaded. Blocks (reads files)."""
    return ServerCertificates(default, by_name).context


def quiet_undecodable_server_names() -> None:
    """Stop a client's server name that is not ASCII from writing a traceback to stderr.

    CPython decodes the name before it calls the SNI callback; when that fails it reports the
    error as "unraisable" (a traceback on stderr, on every such handshake, from anyone) and
    the handshake fails. The handshake failing is right; the traceback is a free way to fill
    the log. Such reports are counted and logged at most once a minute; every other
    unraisable report goes to the hook that was in place. Call once per process (forked
    workers inherit it)."""
    previous = sys.unraisablehook
    if getattr(previous, _QUIET_ATTR, False):
        return
    last = [-_QUIET_EVERY]
    dropped = [0]

    def hook(report: UnraisableHookArgs) -> None:
        if not (
            isinstance(report.exc_value, UnicodeDecodeError) and isinstance(report.object, bytes)
        ):
            previous(report)
            return
        dropped[0] += 1
        now = time.monotonic()
        if now - last[0] >= _QUIET_EVERY:
            last[0] = now
            log.warning(
                "TLS handshake(s) refused: a server name (SNI) that is not ASCII (%d so far)",
                dropped[0],
            )

    setattr(hook, _QUIET_ATTR, True)
    sys.unraisablehook = hook


def sni_of(ssl_object: object) -> str | None:
    """The server name the client sent in its TLS handshake, if any."""
    name = getattr(ssl_object, _SNI_ATTR, None)
    return name if isinstance(name, str) else None


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A context that verifies upstream certificates: system CAs, or ``cafile``. Blocks."""
    return client_ssl_context(cafile)
