"""``lychgate user devices`` and ``lychgate user revoke-device``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cli.test_cli import lychgate
from fixtures.store import make_device
from lychgate.domain import Device
from lychgate.ids import UserId
from lychgate.store import open_store


def _enrolled(data_dir: Path, user_id: str) -> Device:
    """A device of ``user_id``, put in the store as enrollment would."""
    device = make_device(UserId(user_id), name="Ada's phone")

    async def add() -> None:
        async with await open_store(f"sqlite:///{data_dir / 'lychgate.db'}") as store:
            await store.devices.add(device)

    asyncio.run(add())
    return device


def test_an_operator_lists_and_revokes_a_users_device(data_dir: Path) -> None:
    d = str(data_dir)
    assert lychgate("init", "--dir", d)[0] == 0
    code, out = lychgate("user", "add", "Ada", "--email", "ada@example.test", "--dir", d)
    assert code == 0, out
    code, out = lychgate("user", "devices", "Ada", "--dir", d)
    assert (code, out.strip()) == (0, "no devices")
    user_id = json.loads(lychgate("user", "list", "--json", "--dir", d)[1])[0]["id"]
    phone = _enrolled(data_dir, user_id)
    code, out = lychgate("user", "devices", "ada@example.test", "--json", "--dir", d)
    assert code == 0, out
    (listed,) = json.loads(out)
    assert (listed["id"], listed["name"], listed["revoked"]) == (phone.id, "Ada's phone", False)
    code, out = lychgate("user", "revoke-device", "Ada", "d_nope", "--dir", d)
    assert code != 0
    assert "Ada has no device 'd_nope'" in " ".join(out.split())
    code, out = lychgate("user", "revoke-device", "Ada", phone.id, "--dir", d)
    assert code == 0, out
    assert f"revoked device Ada's phone ({phone.id}); 0 session(s) ended" in " ".join(out.split())
    code, out = lychgate("user", "devices", "Ada", "--json", "--dir", d)
    assert json.loads(out)[0]["revoked"] is True
