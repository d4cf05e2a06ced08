"""Fixtures for the device tests: a fake server, and key files enrolled with it."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.fakeserver import FakeDevice, FakeLogin, FakeServer
from lychgate.device.keyfile import DeviceRecord, KeyFile, new_private_key, save_key_file
from lychgate.ids import DeviceId, UserId

NOW = 1_900_000_000.0  # a fixed "now" for both sides of every signed call
ENROLLED_AT = datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
LOGIN_ID = "l_Abc-123_xyz"
USER = {"id": "usr_ada", "name": "Ada Lovelace", "email": "ada@example.test"}


@pytest.fixture
def server() -> FakeServer:
    """A fake server with one enrollment code, two apps and one pending sign-in."""
    fake = FakeServer(clock=lambda: NOW)
    fake.codes["code-1"] = dict(USER)
    fake.apps = [
        {"slug": "wiki", "name": "Wiki", "description": "", "icon": "", "url": fake.public_url},
        {"slug": "grafana", "name": "Grafana", "description": "", "icon": "", "url": "x"},
    ]
    fake.logins[LOGIN_ID] = FakeLogin(number=42, choices=[17, 42, 88])
    return fake


def enroll_directly(server: FakeServer, *, device_id: str = "dev_cli") -> KeyFile:
    """A key file for a device the fake knows, made without the enrollment call."""
    key = new_private_key()
    record = DeviceRecord(
        device_id=DeviceId(device_id),
        device_name="laptop (CLI)",
        user_id=UserId(USER["id"]),
        user_name=USER["name"],
        user_email=USER["email"],
        server=server.public_url,
        enrolled_at=ENROLLED_AT,
    )
    key_file = KeyFile(record, key)
    server.devices[device_id] = FakeDevice(device_id, USER["id"], key_file.public_key_raw(), "l")
    return key_file


@pytest.fixture
def key_file(server: FakeServer) -> KeyFile:
    return enroll_directly(server)


@pytest.fixture
def key_path(tmp_path: Path, key_file: KeyFile) -> Path:
    """``key_file`` saved where the CLI tests point ``--key``."""
    path = tmp_path / "config" / "lychgate" / "device.json"
    save_key_file(path, key_file, overwrite=False)
    return path


@pytest.fixture
def tls() -> ssl.SSLContext:
    """Unused by the in-process transport, but the client API takes one."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
