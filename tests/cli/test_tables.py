"""Tables never cut an id: other commands take them, and a pipe is 80 columns wide."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.test_cli import lychgate
from device.fakeserver import FakeDevice, FakeServer
from lychgate.cli.main import app
from lychgate.device.keyfile import DeviceRecord, KeyFile, new_private_key, save_key_file
from lychgate.ids import DeviceId, UserId

WIDTHS = ["80", "40"]
LONG = "A rather long display name, as people have them " * 2


def whole_on_one_line(value: str, out: str) -> bool:
    return any(value in line for line in out.splitlines())


@pytest.fixture
def d(data_dir: Path) -> str:
    where = str(data_dir)
    assert lychgate("init", "--dir", where)[0] == 0
    return where


@pytest.mark.parametrize("columns", WIDTHS)
def test_user_list_keeps_ids_whole(d: str, columns: str) -> None:
    for n in range(2):
        email = f"someone.with.a.long.address.{n}@example.test"
        assert lychgate("user", "add", LONG.strip(), "--email", email, "--dir", d)[0] == 0
    _, listing = lychgate("user", "list", "--json", "--dir", d)
    ids = [u["id"] for u in json.loads(listing)]
    code, out = lychgate("user", "list", "--dir", d, env={"COLUMNS": columns})
    assert code == 0, out
    assert all(whole_on_one_line(i, out) for i in ids), out


@pytest.mark.parametrize("columns", WIDTHS)
def test_app_list_keeps_slugs_whole(d: str, columns: str) -> None:
    slug = "a-very-long-slug-of-forty-characters-xyz"
    code, out = lychgate(
        "app", "add", "--dir", d, "--slug", slug, "--name", LONG[:100].strip(),
        "--upstream", "unix:/run/some/rather/deep/directory/of/sockets/app.sock",
    )  # fmt: skip
    assert code == 0, out
    code, out = lychgate("app", "list", "--dir", d, env={"COLUMNS": columns})
    assert code == 0, out
    assert whole_on_one_line(slug, out), out
    assert "…" not in out  # other values fold onto more lines, never lost


@pytest.mark.parametrize("columns", WIDTHS)
def test_keys_list_keeps_kids_whole(d: str, columns: str) -> None:
    assert lychgate("keys", "rotate", "--dir", d)[0] == 0
    code, wide = lychgate("keys", "list", "--dir", d, env={"COLUMNS": "300"})
    kids = [line.split("│")[1].strip() for line in wide.splitlines() if line.startswith("│")]
    assert len(kids) == 2
    code, out = lychgate("keys", "list", "--dir", d, env={"COLUMNS": columns})
    assert code == 0, out
    assert all(whole_on_one_line(k, out) for k in kids), out


def enrolled_key(server: FakeServer, path: Path) -> Path:
    """A key file for a device the fake server knows, made without the enrollment call."""
    record = DeviceRecord(
        device_id=DeviceId("dev_cli"),
        device_name="laptop (CLI)",
        user_id=UserId("usr_ada"),
        user_name="Ada",
        user_email=None,
        server=server.public_url,
        enrolled_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    key_file = KeyFile(record, new_private_key())
    server.devices["dev_cli"] = FakeDevice("dev_cli", "usr_ada", key_file.public_key_raw(), "l")
    save_key_file(path, key_file, overwrite=False)
    return path


@pytest.mark.parametrize("columns", WIDTHS)
def test_device_sessions_and_apps_keep_ids_whole(tmp_path: Path, columns: str) -> None:
    # `device sessions` showed `GMo42dxvJ…`, and `device sessions revoke` needs the whole id.
    server = FakeServer()
    key = enrolled_key(server, tmp_path / "device.json")
    handle = "GMo42dxvJabcdefghijklm"  # a session handle's length: 22
    server.sessions[handle] = {
        "browser": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537",
        "ip": "2001:db8:1234:5678:9abc:def0:1234:5678",
        "device": "dev_cli",
        "created_at": "2030-01-02T03:04:05Z",
    }
    slug = "a-very-long-slug-of-forty-characters-xyz"
    server.apps = [{"slug": slug, "name": LONG, "description": "", "icon": "", "url": LONG}]
    for command in ("sessions", "apps"):
        result = CliRunner().invoke(
            app,
            ["device", command, "--key", str(key)],
            obj=server.connector(),
            env={"COLUMNS": columns},
        )
        assert result.exit_code == 0, result.output
        assert whole_on_one_line(handle if command == "sessions" else slug, result.output)
