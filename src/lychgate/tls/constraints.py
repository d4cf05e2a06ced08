"""Name constraints for the internal CA (RFC 5280 §4.2.1.10).

Users install the internal CA on their phones and laptops. A plain root CA would let whoever
steals ``ca.key`` mint certificates for any site on those devices. A CA whose certificate
carries ``permittedSubtrees`` can only vouch for the deployment's own names, so that theft is
limited to what the attacker could already reach. Browsers and OpenSSL enforce the constraint on
every chain through the CA; :func:`not_permitted` checks it up front so that we never issue a leaf
that clients would reject.

The subtrees are:

* a ``dNSName`` per deployment domain: per §4.2.1.10 it permits that name and every name made
  by adding labels on the left (``example.com`` permits ``a.b.example.com``);
* an ``iPAddress`` network per address in use, plus ``127.0.0.0/8`` and ``::1/128`` always.
  The IP subtrees must be present even when no IP is in use: a constraint restricts only the
  name forms it lists, so with DNS subtrees alone every IP address would stay permitted.
* for the same reason, a deployment with no DNS name at all gets the subtree ``invalid``, a
  top-level name reserved never to exist (RFC 6761 §6.4), so that no real DNS name is
  permitted either.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final

from cryptography import x509

from lychgate.tls.hosts import is_ip

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NO_DNS_NAME: Final = "invalid"
LOOPBACK_NETWORKS: Final[tuple[IpNetwork, ...]] = (
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv6Network("::1/128"),
)


def name_constraints(names: Sequence[str]) -> x509.NameConstraints:
    """Build the constraint permitting ``names`` (normalized; wildcards allowed) and loopback."""
    dns: dict[str, None] = {}  # a dict keeps the order and drops duplicates
    networks: dict[IpNetwork, None] = dict.fromkeys(LOOPBACK_NETWORKS)
    for name in names:
        if is_ip(name):
            network = ipaddress.ip_network(name)
            if not any(_contains(net, network) for net in networks):
                networks[network] = None
        else:
            dns[name.removeprefix("*.")] = None
    if not dns:
        dns[_NO_DNS_NAME] = None
    subtrees: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    subtrees += [x509.IPAddress(net) for net in networks]
    return x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None)


def not_permitted(ca_certificate: x509.Certificate, names: Iterable[str]) -> list[str]:
    """Return the ``names`` (normalized) that ``ca_certificate``'s constraints do NOT permit.

    An empty list means the CA may issue for all of them. A CA without the extension
    permits everything.
    """
    try:
        ext = ca_certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return []
    constraint = ext.value
    permitted = list(constraint.permitted_subtrees or [])
    excluded = list(constraint.excluded_subtrees or [])
    return [
        name
        for name in names
        if not _allowed_by(permitted, name, empty_means=True)
        or _allowed_by(excluded, name, empty_means=False)
    ]


def _allowed_by(subtrees: list[x509.GeneralName], name: str, *, empty_means: bool) -> bool:
    """Does ``name`` fall in one of ``subtrees`` of its own form?

    A list with no subtree of the name's form says nothing about it: ``empty_means`` then.
    """
    if is_ip(name):
        address = ipaddress.ip_address(name)
        nets = [g.value for g in subtrees if isinstance(g, x509.IPAddress)]
        if not nets:
            return empty_means
        return any(isinstance(n, IpNetwork) and address in n for n in nets)
    host = name.removeprefix("*.")
    domains = [g.value.lower() for g in subtrees if isinstance(g, x509.DNSName)]
    if not domains:
        return empty_means
    # A leading dot (".example.com", seen in the wild though not in §4.2.1.10) means
    # "subdomains only"; we never write one, but read it the strict way.
    return any(host.endswith(d) if d.startswith(".") else _under(host, d) for d in domains)


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _contains(outer: IpNetwork, inner: IpNetwork) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]
