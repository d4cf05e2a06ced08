"""``lychgate user revoke-device USER NAME``: a device named as ``user devices`` lists it.

It took an id only, and said "Bob has no device 'bobphone'" of a device that ``user devices``
listed by that name.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cli.test_cli import lychgate
from fixtures.store import make_device
from lychgate.domain import Device
from lychgate.ids import UserId
from lychgate.store import open_store


def _bob(data_dir: Path, *names: str) -> list[Device]:
    """A deployment with the user Bob and his devices of these names."""
    d = str(data_dir)
    assert lychgate("init", "--dir", d)[0] == 0
    assert lychgate("user", "add", "Bob", "--dir", d)[0] == 0
    user_id = json.loads(lychgate("user", "list", "--json", "--dir", d)[1])[0]["id"]
    devices = [make_device(UserId(user_id), name=name) for name in names]

    async def add() -> None:
        async with await open_store(f"sqlite:///{data_dir / 'lychgate.db'}") as store:
            for device in devices:
                await store.devices.add(device)

    asyncio.run(add())
    return devices


def _revoked(data_dir: Path) -> dict[str, bool]:
    out = lychgate("user", "devices", "Bob", "--json", "--dir", str(data_dir))[1]
    return {d["id"]: d["revoked"] for d in json.loads(out)}


def test_a_device_is_revoked_by_its_name(data_dir: Path) -> None:
    phone, laptop = _bob(data_dir, "bobphone", "boblaptop")
    code, out = lychgate("user", "revoke-device", "Bob", "bobphone", "--dir", str(data_dir))
    assert code == 0, out
    assert f"revoked device bobphone ({phone.id})" in out
    assert _revoked(data_dir) == {phone.id: True, laptop.id: False}


def test_a_name_of_several_devices_asks_for_the_id(data_dir: Path) -> None:
    first, second = _bob(data_dir, "phone", "phone")
    d = str(data_dir)
    code, out = lychgate("user", "revoke-device", "Bob", "phone", "--dir", d)
    assert code != 0
    said = " ".join(out.split())
    assert "2 devices of Bob are named 'phone'; give the id of the one to revoke" in said
    assert f"(lychgate user devices Bob --dir {d})" in said
    assert _revoked(data_dir) == {first.id: False, second.id: False}
    # The id still works, and then the one left is the only live device of that name.
    assert lychgate("user", "revoke-device", "Bob", first.id, "--dir", d)[0] == 0
    code, out = lychgate("user", "revoke-device", "Bob", "phone", "--dir", d)
    assert code == 0, out
    assert _revoked(data_dir) == {first.id: True, second.id: True}


def test_an_unknown_name_is_still_not_found(data_dir: Path) -> None:
    _bob(data_dir, "bobphone")
    code, out = lychgate("user", "revoke-device", "Bob", "nophone", "--dir", str(data_dir))
    assert code != 0
    assert "Bob has no device 'nophone'" in out
