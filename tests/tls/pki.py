"""Test helpers: a fixed clock, path validation, and leaves our API refuses to make.

``forge_leaf`` builds certificates by hand that :func:`lychgate.tls.ca.issue_server_cert` would
refuse, to show that clients refuse them too.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from lychgate.tls.ca import CaMaterial, CertMaterial

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def forge_leaf(ca: CaMaterial, names: list[str], now: datetime) -> CertMaterial:
    """A well-formed server certificate for ``names``, signed by ``ca`` with no checks."""
    key = ec.generate_private_key(ec.SECP256R1())
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    return CertMaterial(certificate, key)


def verify_with(
    root: x509.Certificate, leaf: x509.Certificate, name: str, at: datetime = NOW
) -> list[x509.Certificate]:
    """Path validation (RFC 5280 and CA/B Forum profile) of ``leaf`` for ``name`` at ``at``.

    ``root`` is the only trust anchor. Raises ``VerificationError``.
    """
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    verifier = PolicyBuilder().store(Store([root])).time(at).build_server_verifier(subject)
    return verifier.verify(leaf, [])
