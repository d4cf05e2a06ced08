"""Fixtures shared by every tier.

Blocking calls on the event loop fail the test: ``blockbuster`` patches the usual culprits
(sqlite3, file and socket I/O, time.sleep) and raises ``BlockingError`` when one of them is
called from our own code while a loop is running in that thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

# Reusable fixtures live in tests/fixtures/, one module per concept.
pytest_plugins = ["fixtures.keys", "fixtures.store"]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which lychgate code blocks a running event loop."""
    with blockbuster_ctx(["lychgate"]) as bb:
        yield bb


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh, empty deployment directory."""
    d = tmp_path / "data"
    d.mkdir()
    return d
