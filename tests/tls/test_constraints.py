"""Reading and writing the CA's name constraints (RFC 5280 §4.2.1.10)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.verification import VerificationError

from lychgate.tls.ca import CaMaterial, create_ca
from lychgate.tls.constraints import name_constraints, not_permitted

from .pki import NOW, forge_leaf, verify_with


@pytest.mark.parametrize(
    ("name", "permitted"),
    [
        ("example.com", True),
        ("app.example.com", True),
        ("a.b.example.com", True),
        ("*.example.com", True),
        ("192.0.2.10", True),
        ("127.0.0.1", True),
        ("127.200.0.1", True),
        ("::1", True),
        ("evil.com", False),
        ("evilexample.com", False),  # a suffix match must stop at a label boundary
        ("example.com.evil.com", False),
        ("com", False),
        ("*.com", False),
        ("192.0.2.11", False),
        ("10.0.0.1", False),
        ("::2", False),
    ],
)
def test_not_permitted(ca: CaMaterial, name: str, permitted: bool) -> None:
    assert not_permitted(ca.certificate, [name]) == ([] if permitted else [name])


def test_not_permitted_lists_only_the_refused(ca: CaMaterial) -> None:
    assert not_permitted(ca.certificate, ["example.com", "evil.com", "10.0.0.1"]) == [
        "evil.com",
        "10.0.0.1",
    ]


def test_unconstrained_ca_permits_everything() -> None:
    assert not_permitted(create_ca("Open", NOW).certificate, ["evil.com", "10.0.0.1"]) == []


def test_dns_only_deployment_still_constrains_ips() -> None:
    """Without IP subtrees every address would be permitted, so loopback is always listed."""
    constraint = name_constraints(["*.example.com", "example.com"])
    assert constraint.permitted_subtrees == [
        x509.DNSName("example.com"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    ]
    ca = create_ca("DNS only", NOW, permitted=["example.com"])
    assert not_permitted(ca.certificate, ["192.0.2.1"]) == ["192.0.2.1"]


def test_loopback_addresses_are_not_listed_twice() -> None:
    constraint = name_constraints(["127.0.0.1", "::1", "2001:db8::1"])
    assert constraint.permitted_subtrees == [
        x509.DNSName("invalid"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
        x509.IPAddress(ipaddress.ip_network("2001:db8::1/128")),
    ]


def test_ip_only_deployment_still_constrains_dns_names() -> None:
    ca = create_ca("IP only", NOW, permitted=["192.0.2.10"])
    constraint = ca.certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    assert x509.DNSName("invalid") in (constraint.permitted_subtrees or [])
    assert not_permitted(ca.certificate, ["evil.com", "192.0.2.10", "127.0.0.1"]) == ["evil.com"]
    forged = forge_leaf(ca, ["evil.com"], NOW)
    with pytest.raises(VerificationError):
        verify_with(ca.certificate, forged.certificate, "evil.com")
    allowed = forge_leaf(ca, ["192.0.2.10"], NOW)
    verify_with(ca.certificate, allowed.certificate, "192.0.2.10")
