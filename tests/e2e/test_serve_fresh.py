"""``lychgate serve`` on a directory that holds nothing yet, without the demo apps.

serve says it creates the deployment "like `lychgate init`", but it made the files alone: no
signing key, so authz answered every sign-in 503, and no admin setup link was printed. That
is what `make run SERVE_ARGS=` does on a fresh machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.deployment import free_port, lychgate, serve

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


async def test_serve_on_a_fresh_directory_is_ready_to_sign_in(tmp_path: Path) -> None:
    data_dir = tmp_path  # empty but for the log the harness writes there
    async with serve(data_dir, free_port()) as served:
        # The setup link is printed before the processes start, so it is in the log by now.
        log = await asyncio.to_thread(served.log.read_text)
    assert "Admin setup link (one use, valid 24 hours)" in log
    assert "lychgate device enroll http://localhost:8080/.lychgate/enroll/" in log
    assert "holds no signing key" not in log
    keys = await asyncio.to_thread(lychgate, "keys", "list", "--dir", str(data_dir))
    assert "signing" in keys
