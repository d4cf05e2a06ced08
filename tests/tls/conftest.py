"""Shared values for the TLS tests: a CA limited to example.com, made once per session."""

from __future__ import annotations

import pytest

from lychgate.tls.ca import CaMaterial, create_ca

from .pki import NOW


@pytest.fixture(scope="session")
def ca() -> CaMaterial:
    """Constrained to example.com (and 192.0.2.10, and loopback as always)."""
    return create_ca("Test CA", NOW, permitted=["example.com", "192.0.2.10"])
