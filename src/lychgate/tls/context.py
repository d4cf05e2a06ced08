"""``ssl.SSLContext`` factories: the gateway's listening side and its upstream connections.

Both sides speak TLS 1.2 or 1.3 only (RFC 8996 deprecates 1.0 and 1.1) and offer ALPN
``http/1.1`` (RFC 7301): the gateway is an HTTP/1.1 proxy, and announcing it stops a client
from assuming HTTP/2. TLS 1.2 is limited to forward-secret AEAD suites (ECDHE with AES-GCM or
ChaCha20-Poly1305, as in Mozilla's "intermediate" profile); TLS 1.3 suites are all fine.

Building a context reads the certificate files: blocking I/O, so do it at start-up, before
the event loop runs, and share the context between connections.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Final

from lychgate.errors import ConfigError, UsageError

ALPN_PROTOCOLS: Final = ["http/1.1"]
_TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context presenting ``cert_path`` (PEM, leaf then any intermediates).

    Raises :class:`ConfigError` if the files cannot be read or do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    # No renegotiation (a DoS lever, and gone from TLS 1.3); new ECDHE keys per handshake.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # No stateless session tickets: their key lives as long as the process, so whoever took
    # it could decrypt every TLS 1.2 session resumed under it (no forward secrecy), as
    # Mozilla's server guidelines warn. Resumption uses the server's session cache instead.
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 1  # TLS 1.3: one resumable session kept per handshake, not two
    try:
        # Never a passphrase prompt: on a terminal OpenSSL asked for one, twice, and waited.
        context.load_cert_chain(cert_path, key_path, password=_no_passphrase(key_path))
    except (OSError, ssl.SSLError) as exc:
        why = _not_pem(cert_path, key_path) or str(exc)
        raise ConfigError(
            f"cannot load TLS certificate {cert_path} with key {key_path}: {why}", field="tls"
        ) from exc
    return context


def _no_passphrase(key_path: Path) -> Callable[[], bytes]:
    def refuse() -> bytes:
        raise ConfigError(
            f"the TLS key {key_path} is encrypted with a passphrase, which the gateway cannot "
            f"ask for: decrypt it (openssl pkey -in {key_path} -out NEW_KEY; keep it 0600)",
            field="tls",
        )

    return refuse


def _not_pem(cert_path: Path, key_path: Path) -> str | None:
    """What is wrong with the files' format, said plainly (OpenSSL's "PEM lib" says nothing);
    None when both look right or cannot be read (the load's own error says why)."""
    try:
        cert, key = cert_path.read_bytes(), key_path.read_bytes()
    except OSError:
        return None
    if b"PRIVATE KEY-----" in cert and b"-----BEGIN CERTIFICATE-----" in key:
        return "the two files look swapped: tls_cert holds a key and tls_key a certificate"
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        return (
            f"{cert_path} holds no PEM certificate (DER? convert it: "
            f"openssl x509 -inform der -in {cert_path} -out NEW_CERT)"
        )
    if b"PRIVATE KEY-----" not in key:
        return (
            f"{key_path} holds no PEM private key (DER? convert it: "
            f"openssl pkey -inform der -in {key_path} -out NEW_KEY)"
        )
    return None


def client_ssl_context(ca_path: Path | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """A client context for HTTPS upstreams.

    With ``verify`` (the default) the upstream's chain and host name are checked, against
    ``ca_path`` (a PEM bundle, e.g. our own ``ca.pem``) when given, else the system roots.
    ``verify=False`` turns all checking off: the connection is encrypted but unauthenticated,
    which is only for upstreams the admin explicitly marked (``App.verify_tls``). Passing a
    ``ca_path`` together with ``verify=False`` is a contradiction and raises
    :class:`UsageError`.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context)
    if not verify:
        if ca_path is not None:
            raise UsageError("a CA file makes no sense with verify=False", field="ca_path")
        context.check_hostname = False  # must come before CERT_NONE
        context.verify_mode = ssl.CERT_NONE
        return context
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    try:
        if ca_path is None:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            context.load_verify_locations(cafile=ca_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA file {ca_path}: {exc}", field="ca_path") from exc
    return context


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME
    context.set_ciphers(_TLS12_CIPHERS)
    context.set_alpn_protocols(ALPN_PROTOCOLS)
