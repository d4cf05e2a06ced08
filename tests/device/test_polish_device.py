"""``lychgate device apps|sessions --json``, and the advice when the server's certificate
fails against the CA that the key file keeps (after ``lychgate ca rotate``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import trustme
from typer.testing import CliRunner, Result

from device.conftest import NOW
from device.fakeserver import THIS_BROWSER, FakeServer
from lychgate.cli.main import app
from lychgate.device.client import Connector
from lychgate.device.keyfile import KeyFile, save_key_file

runner = CliRunner()


def device(connector: Connector, *args: str) -> Result:
    return runner.invoke(app, ["device", *args], obj=connector, env={"COLUMNS": "200"})


def one_line(result: Result) -> str:
    return " ".join(result.output.split())


def test_apps_json(key_path: Path, server: FakeServer) -> None:
    result = device(server.connector(), "apps", "--json", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    apps = json.loads(result.output)
    assert [a["slug"] for a in apps] == ["wiki", "grafana"]
    assert apps[0] == {
        "slug": "wiki",
        "name": "Wiki",
        "url": server.public_url,
        "description": "",
    }


def test_sessions_json(key_path: Path, server: FakeServer) -> None:
    server.sessions["s_1"] = dict(THIS_BROWSER)
    result = device(server.connector(), "sessions", "--json", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    [session] = json.loads(result.output)
    assert session["id"] == "s_1"
    assert session["this_device"] is True
    assert session["created_at"] == "2030-01-02T03:04:05+00:00"
    assert session["last_seen_at"] is None


def test_empty_listings_are_empty_json(key_path: Path, server: FakeServer) -> None:
    server.apps = []
    for command in ("apps", "sessions"):
        result = device(server.connector(), command, "--json", "--key", str(key_path))
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == []


class UnknownCa(httpx.AsyncBaseTransport):
    """A server whose certificate the trusted CA did not sign (the CA was rotated)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] unknown ca", request=request)


def _unknown_ca() -> Connector:
    return Connector(transport=lambda _tls: UnknownCa(), clock=lambda: NOW)


def _enrolled_with_ca(key_file: KeyFile, tmp_path: Path) -> tuple[Path, Path]:
    ca_path = tmp_path / "lychgate-ca.pem"
    ca_path.write_bytes(trustme.CA().cert_pem.bytes())
    path = tmp_path / "device.json"
    record = replace(key_file.record, ca_file=str(ca_path))
    save_key_file(path, KeyFile(record, key_file.private_key), overwrite=False)
    return path, ca_path


def test_a_stored_ca_that_fails_names_where_the_new_one_goes(
    key_file: KeyFile, tmp_path: Path
) -> None:
    path, ca_path = _enrolled_with_ca(key_file, tmp_path)
    result = device(_unknown_ca(), "apps", "--key", str(path))
    assert result.exit_code == 1
    said = one_line(result)
    assert f"this device trusts the CA at {ca_path}" in said, said
    assert f"lychgate ca export > {ca_path}" in said
    assert "pass --ca" not in said


def test_a_ca_given_with_the_option_gets_the_general_advice(
    key_file: KeyFile, tmp_path: Path
) -> None:
    path, ca_path = _enrolled_with_ca(key_file, tmp_path)
    result = device(_unknown_ca(), "sessions", "--key", str(path), "--ca", str(ca_path))
    assert result.exit_code == 1
    said = one_line(result)
    assert "pass --ca (from `lychgate ca export`)" in said, said
    assert "trusts the CA at" not in said
