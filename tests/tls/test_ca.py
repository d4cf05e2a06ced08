"""The CA and server certificate profiles, checked by path validation."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import VerificationError

from lychgate.errors import ConfigError, UsageError
from lychgate.tls.ca import (
    CA_VALIDITY,
    SERVER_VALIDITY,
    CaMaterial,
    create_ca,
    issue_server_cert,
    san_names,
)

from .pki import NOW, forge_leaf, verify_with

_E = TypeVar("_E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E]:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_profile(ca: CaMaterial) -> None:
    cert = ca.certificate
    assert isinstance(ca.private_key, ec.EllipticCurvePrivateKey)
    assert ca.private_key.curve.name == "secp256r1"
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test CA"
    cert.verify_directly_issued_by(cert)  # self-signed

    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0

    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature

    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.private_key.public_key())

    constraints = _ext(cert, x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.excluded_subtrees is None
    assert set(constraints.value.permitted_subtrees or []) == {
        x509.DNSName("example.com"),
        x509.IPAddress(ipaddress.ip_network("192.0.2.10/32")),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    }

    assert cert.not_valid_before_utc <= NOW
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == CA_VALIDITY
    assert timedelta(days=365 * 9) < lifetime < timedelta(days=365 * 11)


def test_unconstrained_ca_has_no_name_constraints() -> None:
    ca = create_ca("Open CA", NOW)
    with pytest.raises(x509.ExtensionNotFound):
        _ext(ca.certificate, x509.NameConstraints)


def test_leaf_profile(ca: CaMaterial) -> None:
    leaf = issue_server_cert(ca, ["app.example.com", "192.0.2.10", "[::1]", "127.0.0.1"], NOW)
    cert = leaf.certificate
    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)

    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    assert san_names(cert) == ["app.example.com", "192.0.2.10", "::1", "127.0.0.1"]

    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    assert _ext(cert, x509.KeyUsage).value.digital_signature
    ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski.digest

    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == SERVER_VALIDITY <= timedelta(days=397)
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
    assert 0 < cert.serial_number < 2**159


def test_serials_are_random(ca: CaMaterial) -> None:
    serials = {issue_server_cert(ca, ["example.com"], NOW).certificate.serial_number for _ in "abc"}
    assert len(serials) == 3


def test_reissue_can_keep_the_key(ca: CaMaterial) -> None:
    first = issue_server_cert(ca, ["example.com"], NOW)
    second = issue_server_cert(ca, ["example.com"], NOW, key=first.private_key)
    assert second.private_key is first.private_key
    assert second.certificate.public_key() == first.certificate.public_key()


def test_names_are_normalized_and_deduplicated(ca: CaMaterial) -> None:
    leaf = issue_server_cert(ca, ["App.Example.COM.", "app.example.com", "*.EXAMPLE.com"], NOW)
    assert san_names(leaf.certificate) == ["app.example.com", "*.example.com"]


@pytest.mark.parametrize(
    ("names", "server_name"),
    [
        (["example.com"], "example.com"),
        (["example.com", "*.example.com"], "app.example.com"),
        (["*.example.com"], "portal.example.com"),
        (["deep.app.example.com"], "deep.app.example.com"),
        (["192.0.2.10"], "192.0.2.10"),
        (["127.0.0.1"], "127.0.0.1"),
        (["::1"], "::1"),
    ],
)
def test_chain_verifies_for_covered_names(
    ca: CaMaterial, names: list[str], server_name: str
) -> None:
    leaf = issue_server_cert(ca, names, NOW)
    chain = verify_with(ca.certificate, leaf.certificate, server_name)
    assert chain == [leaf.certificate, ca.certificate]


@pytest.mark.parametrize(
    ("names", "server_name"),
    [
        (["example.com"], "app.example.com"),
        (["*.example.com"], "example.com"),
        (["*.example.com"], "a.b.example.com"),  # one label only (RFC 6125 §6.4.3)
        (["app.example.com"], "evil.com"),
        (["192.0.2.10"], "192.0.2.11"),
    ],
)
def test_chain_fails_for_uncovered_names(
    ca: CaMaterial, names: list[str], server_name: str
) -> None:
    leaf = issue_server_cert(ca, names, NOW)
    with pytest.raises(VerificationError):
        verify_with(ca.certificate, leaf.certificate, server_name)


def test_chain_fails_outside_validity(ca: CaMaterial) -> None:
    leaf = issue_server_cert(ca, ["example.com"], NOW)
    verify_with(ca.certificate, leaf.certificate, "example.com", NOW + timedelta(days=396))
    with pytest.raises(VerificationError):
        verify_with(ca.certificate, leaf.certificate, "example.com", NOW + timedelta(days=398))
    with pytest.raises(VerificationError):
        verify_with(ca.certificate, leaf.certificate, "example.com", NOW - timedelta(hours=2))


def test_chain_fails_against_another_ca(ca: CaMaterial) -> None:
    other = create_ca("Other CA", NOW, permitted=["example.com"])
    leaf = issue_server_cert(other, ["example.com"], NOW)
    with pytest.raises(VerificationError):
        verify_with(ca.certificate, leaf.certificate, "example.com")


class TestNameConstraints:
    def test_issuing_outside_the_constraints_is_refused(self, ca: CaMaterial) -> None:
        for names in (["evil.com"], ["example.com", "evil.com"], ["notexample.com"], ["10.0.0.1"]):
            with pytest.raises(ConfigError) as info:
                issue_server_cert(ca, names, NOW)
            assert info.value.field == "hostnames"

    @pytest.mark.parametrize(
        "name", ["evil.com", "example.com.evil.com", "evilexample.com", "10.0.0.1", "::2"]
    )
    def test_forged_leaf_outside_the_constraints_fails_validation(
        self, ca: CaMaterial, name: str
    ) -> None:
        """If ca.key leaks, a leaf for another site still fails on devices trusting the CA."""
        forged = forge_leaf(ca, [name], NOW)
        with pytest.raises(VerificationError):
            verify_with(ca.certificate, forged.certificate, name)

    def test_forged_leaf_with_one_bad_name_fails_validation(self, ca: CaMaterial) -> None:
        forged = forge_leaf(ca, ["app.example.com", "evil.com"], NOW)
        with pytest.raises(VerificationError):
            verify_with(ca.certificate, forged.certificate, "app.example.com")

    def test_the_same_forgery_passes_an_unconstrained_ca(self) -> None:
        # Control: the failures above come from the constraint, not from the forgery.
        open_ca = create_ca("Open CA", NOW)
        forged = forge_leaf(open_ca, ["evil.com"], NOW)
        verify_with(open_ca.certificate, forged.certificate, "evil.com")


def test_leaf_never_outlives_the_ca(ca: CaMaterial) -> None:
    late = ca.certificate.not_valid_after_utc - timedelta(days=10)
    leaf = issue_server_cert(ca, ["example.com"], late)
    assert leaf.certificate.not_valid_after_utc == ca.certificate.not_valid_after_utc
    with pytest.raises(ConfigError):
        issue_server_cert(ca, ["example.com"], ca.certificate.not_valid_after_utc)


def test_bad_arguments(ca: CaMaterial) -> None:
    with pytest.raises(UsageError):
        issue_server_cert(ca, ["example.com"], NOW.replace(tzinfo=None))
    with pytest.raises(UsageError):
        issue_server_cert(ca, [], NOW)
    with pytest.raises(ConfigError):
        issue_server_cert(ca, ["exa mple.com"], NOW)
    with pytest.raises(UsageError):
        create_ca("", NOW)
    with pytest.raises(UsageError):
        create_ca("x" * 65, NOW)
    with pytest.raises(ConfigError):
        create_ca("CA", NOW, permitted=["*"])


def test_private_keys_stay_out_of_reprs(ca: CaMaterial) -> None:
    pem = ca.private_key_pem()
    assert "PRIVATE KEY" in pem.reveal()
    assert "PRIVATE KEY" not in repr(pem)
    assert "private_key" not in repr(ca)
    leaf = issue_server_cert(ca, ["example.com"], NOW)
    assert "private_key" not in repr(leaf)
    assert leaf.certificate_pem().startswith(b"-----BEGIN CERTIFICATE-----")
