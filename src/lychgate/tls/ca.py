"""The internal certificate authority: a P-256 root and the server certificates it issues.

``lychgate init`` makes one CA per deployment and users install its certificate on their
devices (``lychgate ca export``). The profile follows RFC 5280 and the parts of the CA/Browser
Forum Baseline Requirements that browsers and OpenSSL's strict mode check even for private
roots. The tests verify the certificates with ``ssl`` (``VERIFY_X509_STRICT`` too) and with
:mod:`cryptography.x509.verification` (its CA/B Forum profile); browsers are not tested here.

* CA: self-signed, ``basicConstraints`` CA:TRUE pathlen:0 (critical; it signs leaves only),
  ``keyUsage`` keyCertSign+cRLSign (critical), subject and authority key identifiers, and
  ``nameConstraints`` (critical, RFC 5280 §4.2.1.10) when the deployment's names are given.
  Valid for about ten years.
* Leaf: ``subjectAltName`` with every name (browsers ignore the CN, RFC 6125 §6.4.4),
  ``extendedKeyUsage`` serverAuth, ``keyUsage`` digitalSignature (ECDHE signs with it),
  ``basicConstraints`` CA:FALSE, key identifiers, a random 159-bit serial (BR §7.1 asks for
  at least 64 bits from a CSPRNG), valid for at most 397 days: Apple and Chrome reject longer
  server certificates, and the limit costs us nothing since ``lychgate`` re-issues them.

Both validity periods start an hour before ``now`` so a device whose clock runs a little
behind still accepts a certificate made a moment ago.

These are pure functions of their arguments (and of the system CSPRNG); files live in
:mod:`lychgate.tls.files`.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lychgate.errors import ConfigError, UsageError
from lychgate.secret import Secret
from lychgate.tls.constraints import name_constraints, not_permitted
from lychgate.tls.hosts import is_ip, normalize_san

CA_VALIDITY: Final = timedelta(days=3652)
SERVER_VALIDITY: Final = timedelta(days=397)
CLOCK_SKEW: Final = timedelta(hours=1)
_ORGANIZATION: Final = "Lychgate"
_MAX_CN: Final = 64  # RFC 5280 Appendix A, ub-common-name


@dataclass(frozen=True, slots=True)
class CertMaterial:
    """A server certificate and its private key. The key never appears in a repr."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> Secret:
        return private_key_pem(self.private_key)


class CaMaterial(CertMaterial):
    """The CA certificate and its private key: the same pair, its own type so that only a CA
    is accepted where a certificate is to be signed."""

    __slots__ = ()


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key: the curve every TLS client supports (RFC 8446 §9.1)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> Secret:
    """The key as unencrypted PKCS#8 PEM, wrapped so it is never logged by accident."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Secret(pem.decode("ascii"))


def create_ca(
    common_name: str,
    now: datetime,
    *,
    permitted: Sequence[str] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> CaMaterial:
    """Create a self-signed CA valid from about ``now`` for ten years.

    ``permitted`` lists the deployment's names (hosts, IPs or ``*.`` wildcards); when given,
    the CA can only ever certify those names, names under them and loopback addresses.
    ``key`` reuses an existing CA key (to finish a CA whose creation was interrupted);
    by default a new P-256 key is made.
    """
    if not 0 < len(common_name) <= _MAX_CN:
        raise UsageError(f"CA common name must be 1-{_MAX_CN} characters", field="common_name")
    start = _utc(now) - CLOCK_SKEW
    key = key if key is not None else new_private_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    if permitted is not None:
        names = [normalize_san(n, field="permitted") for n in permitted]
        builder = builder.add_extension(name_constraints(names), critical=True)
    return CaMaterial(builder.sign(key, hashes.SHA256()), key)


def issue_server_cert(
    ca: CaMaterial,
    hostnames: Sequence[str],
    now: datetime,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> CertMaterial:
    """Issue a TLS server certificate for ``hostnames`` (DNS names, IPs, ``*.`` wildcards).

    Uses ``key`` when given (re-issuing keeps the server key), else a new P-256 key. The
    certificate never outlives the CA. Raises :class:`ConfigError` if a name is invalid or
    outside the CA's name constraints.
    """
    names = list(dict.fromkeys(normalize_san(h) for h in hostnames))
    if not names:
        raise UsageError("a server certificate needs at least one host name", field="hostnames")
    refused = not_permitted(ca.certificate, names)
    if refused:
        raise ConfigError(
            f"the internal CA is not allowed to certify {', '.join(refused)} (its name "
            "constraints); make a new CA and install it on your devices again",
            field="hostnames",
        )
    key = key if key is not None else new_private_key()
    start = _utc(now) - CLOCK_SKEW
    end = min(start + SERVER_VALIDITY, ca.certificate.not_valid_after_utc)
    if end <= _utc(now):
        raise ConfigError("the internal CA has expired; make a new one", field="ca")
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION)]
    if len(names[0]) <= _MAX_CN:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, names[0]))
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    return CertMaterial(certificate, key)


def san_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses in ``certificate``'s subjectAltName, normalized."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    dns = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns + ips


def _general_name(name: str) -> x509.GeneralName:
    if is_ip(name):
        return x509.IPAddress(ipaddress.ip_address(name))
    return x509.DNSName(name)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _serial() -> int:
    # Positive and at most 20 octets in DER (RFC 5280 §4.1.2.2): 159 random bits, never zero.
    return secrets.randbits(159) | 1


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise UsageError("now must be timezone-aware", field="now")
    return now.astimezone(UTC).replace(microsecond=0)
