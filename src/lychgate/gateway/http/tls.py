"""TLS contexts: the listener's (with SNI) and the one that verifies https upstreams.

Building a context reads certificate files, which blocks: do it at start-up, before the loop
runs, or in a thread (``asyncio.to_thread``).

The listener picks a certificate by the client's server name (RFC 6066 section 3): an exact
name first, then a one-label wildcard (``*.example.com``), else the default pair. The name the
client sent is recorded on the TLS object and exposed as ``RequestHead.sni``, so that routing
can refuse a Host that disagrees with it (SECURITY.md item 4).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lychgate.tls.context import client_ssl_context, server_ssl_context

_SNI_ATTR = "lychgate_sni"


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate chain file and its private key file (PEM)."""

    cert_file: Path
    key_file: Path


def _pair_context(pair: CertPair) -> ssl.SSLContext:
    # One hardened server context per pair (lychgate.tls.context: TLS >= 1.2, AEAD, ALPN).
    return server_ssl_context(pair.cert_file, pair.key_file)


def normalize_server_name(name: str) -> str:
    """Lower-case, without a trailing dot: how names are compared."""
    return name.lower().rstrip(".")


def server_context(
    default: CertPair, by_name: Mapping[str, CertPair] | None = None
) -> ssl.SSLContext:
    """A listener context serving ``default``, or the pair in ``by_name`` matching the SNI.

    ``by_name`` keys are host names or ``*.domain`` wildcards. Blocks (reads files).
    """
    ctx = _pair_context(default)
    contexts = {normalize_server_name(n): _pair_context(p) for n, p in (by_name or {}).items()}

    def choose(ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if server_name is None:
            return
        name = normalize_server_name(server_name)
        setattr(ssl_object, _SNI_ATTR, name)
        chosen = contexts.get(name)
        if chosen is None and "." in name:
            chosen = contexts.get("*." + name.split(".", 1)[1])
        if chosen is not None:
            ssl_object.context = chosen

    ctx.sni_callback = choose
    return ctx


def sni_of(ssl_object: object) -> str | None:
    """The server name the client sent in its TLS handshake, if any."""
    name = getattr(ssl_object, _SNI_ATTR, None)
    return name if isinstance(name, str) else None


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A context that verifies upstream certificates: system CAs, or ``cafile``. Blocks."""
    return client_ssl_context(cafile)
