"""What the device CLI says when its CA or key file cannot be used: plain words, naming the
option the user typed, never an internal parameter (``ca_path``) or an exception class."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from device.fakeserver import FakeServer
from lychgate.cli.main import app
from lychgate.device.keyfile import KeyFile, save_key_file

runner = CliRunner()
# What used to leak: "ca_path: ..." and "(ValueError)", "(JSONDecodeError)", "(TypeError)".
INTERNALS = re.compile(r"ca_path|\((?:[A-Z][a-z]+)+\)|Errno")


def device(server: FakeServer, *args: str) -> Result:
    return runner.invoke(app, ["device", *args], obj=server.connector(), env={"COLUMNS": "200"})


def one_line(result: Result) -> str:
    return " ".join(result.output.split())


def test_a_missing_ca_file_names_the_option(
    server: FakeServer, key_path: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    result = device(server, "apps", "--key", str(key_path), "--ca", str(missing))
    assert result.exit_code == 2
    said = one_line(result)
    assert f"--ca: cannot use {missing} as the CA file: no such file or directory" in said
    assert not INTERNALS.search(said), said


def test_a_file_that_is_no_certificate_says_so(
    server: FakeServer, key_path: Path, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    result = device(server, "apps", "--key", str(key_path), "--ca", str(bogus))
    assert result.exit_code == 2
    assert "it holds no PEM certificate" in one_line(result)
    assert not INTERNALS.search(result.output), result.output


def test_a_remembered_ca_that_is_gone_says_where_it_came_from(
    server: FakeServer, key_file: KeyFile, tmp_path: Path
) -> None:
    gone = tmp_path / "moved-away.pem"
    path = tmp_path / "device.json"
    save_key_file(
        path, KeyFile(replace(key_file.record, ca_file=str(gone)), key_file.private_key),
        overwrite=False,
    )  # fmt: skip
    result = device(server, "apps", "--key", str(path))
    assert result.exit_code == 2
    said = one_line(result)
    assert f"cannot use {gone}, the CA certificate this device was enrolled with" in said
    assert "pass --ca FILE" in said
    assert not INTERNALS.search(said), said


def _damage(doc: dict[str, object], how: str) -> bytes:
    if how == "not-json":
        return b"{"
    if how == "deep":
        return b"[" * 50_000
    if how == "format":
        doc["format"] = "something-else/9"
    elif how == "missing":
        del doc["device_id"]
    elif how == "type":
        doc["user"] = "Ada"
    elif how == "date":
        doc["enrolled_at"] = "yesterday"
    elif how == "naive":
        doc["enrolled_at"] = "2030-01-01T00:00:00"
    elif how == "base64":
        doc["private_key"] = "not base64!"
    elif how == "short":
        doc["private_key"] = "AAAA"
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("not-json", "it is not JSON"),
        ("deep", "it is not JSON"),
        ("format", "it is not in the lychgate-device-key/1 format"),
        ("missing", "device_id is missing or not a non-empty string"),
        ("type", "user is missing or not an object"),
        ("date", "enrolled_at is not a date and time"),
        ("naive", "enrolled_at has no time zone"),
        ("base64", "private_key is not base64url"),
        ("short", "private_key is not 32 bytes long"),
    ],
)
def test_a_damaged_key_file_says_what_is_wrong(
    server: FakeServer, key_path: Path, how: str, said: str
) -> None:
    doc = json.loads(key_path.read_text())
    secret = doc["private_key"]
    key_path.write_bytes(_damage(doc, how))
    result = device(server, "apps", "--key", str(key_path))
    assert result.exit_code == 2
    output = one_line(result)
    assert f"is not a valid device key file: {said}" in output
    assert not INTERNALS.search(output), output
    assert secret not in result.output


def test_the_enroll_help_says_the_admin_fields_are_for_the_setup_link(
    server: FakeServer,
) -> None:
    result = device(server, "enroll", "--help")
    assert result.exit_code == 0
    said = one_line(result)
    assert "ignored (whatever it holds) by any other link" in said
