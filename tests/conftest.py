"""Fixtures shared by every tier.

Property tests (hypothesis) run without a per-example deadline. Blocking calls on the event
loop fail the test: ``blockbuster`` patches the usual culprits
(sqlite3, file and socket I/O, time.sleep) and raises ``BlockingError`` when one of them is
called from our own code while a loop is running in that thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from hypothesis import settings

# No per-example deadline: on a busy two-core CI machine a slow example is not a bug, and a
# timed assertion is a flaky one. Property tests still run their usual number of examples.
settings.register_profile("lychgate", deadline=None)
settings.load_profile("lychgate")

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
