"""``lychgate device ...`` end to end against the fake server, prompts answered on stdin."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner, Result

from device.conftest import LOGIN_ID, USER
from device.fakeserver import THIS_BROWSER, FakeServer
from device.qr import qr_png
from lychgate.cli.main import app
from lychgate.device.keyfile import load_key_file
from lychgate.devicesig import b64url

runner = CliRunner()
LOGIN_URL = f"https://gate.example.test/.lychgate/d/login/{LOGIN_ID}"


def device(server: FakeServer, *args: str, input: str | None = None) -> Result:
    """Run ``lychgate device ARGS`` with the fake server as the network."""
    return runner.invoke(
        app, ["device", *args], input=input, obj=server.connector(), env={"COLUMNS": "200"}
    )


def private_b64(path: Path) -> str:
    raw = load_key_file(path).private_key.private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    return b64url(raw)


# enroll, status


def test_enroll_writes_a_private_key_file(server: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "device.json"
    link = server.public_url + "/.lychgate/enroll/code-1"
    result = device(server, "enroll", link, "--name", "build box", "--key", str(path))
    assert result.exit_code == 0, result.output
    assert "enrolled build box for Ada Lovelace on https://gate.example.test" in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = load_key_file(path).record
    assert (record.device_id, record.device_name, record.user_id) == (
        "dev_1",
        "build box",
        USER["id"],
    )
    assert private_b64(path) not in result.output
    assert server.devices["dev_1"].name == "build box"


def test_enroll_never_overwrites_and_keeps_the_link(server: FakeServer, key_path: Path) -> None:
    before = key_path.read_bytes()
    link = server.public_url + "/.lychgate/enroll/code-1"
    result = device(server, "enroll", link, "--key", str(key_path))
    assert result.exit_code == 1
    assert "--force" in result.output
    assert key_path.read_bytes() == before
    assert "code-1" in server.codes  # refused before the one-time link was spent
    forced = device(server, "enroll", link, "--key", str(key_path), "--force")
    assert forced.exit_code == 0, forced.output
    replaced = load_key_file(key_path)
    assert replaced.record.device_id != "dev_cli"
    assert server.devices[replaced.record.device_id].public_key == replaced.public_key_raw()


def test_enroll_an_admin_setup_link(server: FakeServer, tmp_path: Path) -> None:
    link = server.public_url + "/.lychgate/enroll/code-1"
    key = str(tmp_path / "d.json")
    args = ["enroll", link, "--key", key, "--user-name", "Grace", "--email", "g@example.test"]
    assert device(server, *args).exit_code == 0
    assert server.enroll_bodies[0]["user_name"] == "Grace"
    assert server.enroll_bodies[0]["email"] == "g@example.test"


def test_enroll_refused_link(server: FakeServer, tmp_path: Path) -> None:
    link = server.public_url + "/.lychgate/enroll/spent"
    result = device(server, "enroll", link, "--key", str(tmp_path / "d.json"))
    assert result.exit_code == 1
    assert "unknown, used, cancelled or expired" in result.output
    assert not (tmp_path / "d.json").exists()


def test_key_file_from_the_environment(
    server: FakeServer, key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LYCHGATE_DEVICE_KEY", str(key_path))
    result = device(server, "status")
    assert result.exit_code == 0, result.output
    assert "dev_cli" in result.output


def test_status_shows_the_record_and_never_the_key(key_path: Path, server: FakeServer) -> None:
    result = device(server, "status", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    for text in ("dev_cli", "Ada Lovelace", "ada@example.test", server.public_url, str(key_path)):
        assert text in result.output
    assert private_b64(key_path) not in result.output
    key_text = json.loads(key_path.read_text())["private_key"]
    assert key_text not in result.output


def test_a_loose_key_file_is_refused(key_path: Path, server: FakeServer) -> None:
    key_path.chmod(0o644)
    result = device(server, "status", "--key", str(key_path))
    assert result.exit_code == 2
    assert "chmod 600" in result.output
    assert device(server, "apps", "--key", str(key_path)).exit_code == 2
    assert server.signed_calls == []


def test_no_key_file(server: FakeServer, tmp_path: Path) -> None:
    result = device(server, "apps", "--key", str(tmp_path / "none.json"))
    assert result.exit_code == 1
    assert "enroll first" in result.output


# approve, deny


def test_approve_shows_where_the_request_comes_from(key_path: Path, server: FakeServer) -> None:
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), input="y\n42\n")
    assert result.exit_code == 0, result.output
    for text in ("Firefox/128.0", "203.0.113.7", "wiki", "2030-01-02 03:04:05 UTC"):
        assert text in result.output
    assert "(17, 42, 88)" in result.output
    assert "approved" in result.output
    assert server.logins[LOGIN_ID].status == "approved"


def test_approve_reasks_until_one_of_the_three(key_path: Path, server: FakeServer) -> None:
    answers = "y\n43\nx\n\u00b2\n88\n"  # "²" is a digit to str.isdigit(), not to int()
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), input=answers)
    assert result.exit_code == 1
    assert result.output.count("type one of 17, 42, 88") == 3
    assert "wrong number" in result.output  # 88 was offered but wrong: no second guess
    assert server.logins[LOGIN_ID].status == "denied"


def test_yes_skips_the_question_but_never_the_number(key_path: Path, server: FakeServer) -> None:
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), "--yes", input="42\n")
    assert result.exit_code == 0, result.output
    assert "Is this your sign-in" not in result.output
    assert "Number shown in the browser" in result.output
    assert server.logins[LOGIN_ID].status == "approved"


def test_yes_and_number(key_path: Path, server: FakeServer) -> None:
    args = ["approve", LOGIN_URL, "--key", str(key_path), "--yes", "--number", "42"]
    result = device(server, *args)
    assert result.exit_code == 0, result.output
    assert server.logins[LOGIN_ID].status == "approved"


def test_a_number_not_offered_changes_nothing(key_path: Path, server: FakeServer) -> None:
    args = ["approve", LOGIN_URL, "--key", str(key_path), "--yes", "--number", "43"]
    result = device(server, *args)
    assert result.exit_code == 1
    assert "not one of the numbers offered" in result.output
    assert server.logins[LOGIN_ID].status == "pending"


def test_saying_no_denies(key_path: Path, server: FakeServer) -> None:
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), input="n\n")
    assert result.exit_code == 1
    assert "denied" in result.output
    assert server.logins[LOGIN_ID].status == "denied"


def test_approve_from_a_qr_screenshot(key_path: Path, server: FakeServer, tmp_path: Path) -> None:
    image = tmp_path / "login.png"
    image.write_bytes(qr_png(LOGIN_URL))
    args = ["approve", str(image), "--key", str(key_path), "--yes", "--number", "42"]
    result = device(server, *args)
    assert result.exit_code == 0, result.output
    assert server.logins[LOGIN_ID].status == "approved"


@pytest.mark.parametrize(
    "url",
    [
        f"https://evil.example/.lychgate/d/login/{LOGIN_ID}",
        f"http://gate.example.test/.lychgate/d/login/{LOGIN_ID}",
        f"https://gate.example.test@evil.example/.lychgate/d/login/{LOGIN_ID}",
    ],
)
def test_a_foreign_qr_code_is_refused_before_any_call(
    key_path: Path, server: FakeServer, tmp_path: Path, url: str
) -> None:
    image = tmp_path / "phish.png"
    image.write_bytes(qr_png(url))
    for target in (url, str(image)):
        result = device(server, "approve", target, "--key", str(key_path), input="y\n42\n")
        assert result.exit_code == 1
        assert "refusing" in result.output or "userinfo" in result.output
    assert server.signed_calls == []


def test_a_decided_request(key_path: Path, server: FakeServer) -> None:
    server.logins[LOGIN_ID].status = "expired"
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), input="y\n42\n")
    assert result.exit_code == 1
    assert "expired, not pending" in result.output
    assert ("POST", f"/.lychgate/api/v1/device/login/{LOGIN_ID}/approve") not in (
        server.signed_calls
    )


def test_a_forged_browser_line_stays_on_its_line(key_path: Path, server: FakeServer) -> None:
    server.logins[LOGIN_ID].browser = "Firefox\nIP        198.51.100.1\x1b[2K"
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), input="n\n")
    lines = result.output.splitlines()
    assert not any(line.lstrip().startswith("IP        198.51.100.1") for line in lines)
    assert "\x1b" not in result.output
    assert "Firefox\ufffdIP" in result.output


def test_deny(key_path: Path, server: FakeServer) -> None:
    result = device(server, "deny", LOGIN_URL, "--key", str(key_path))
    assert result.exit_code == 0, result.output
    assert server.logins[LOGIN_ID].status == "denied"


def test_errors_are_one_clear_line(key_path: Path, server: FakeServer) -> None:
    server.devices["dev_cli"].revoked = True
    result = device(server, "apps", "--key", str(key_path))
    assert result.exit_code == 1
    assert "revoked" in result.output
    assert "Traceback" not in result.output
    server.devices["dev_cli"].revoked = False
    server.retry_after = "30"
    result = device(server, "approve", LOGIN_URL, "--key", str(key_path), "-y", "--number", "42")
    assert result.exit_code == 1
    assert "try again in 30 s" in result.output


# apps, open, sessions, logout


def test_apps_and_open(key_path: Path, server: FakeServer) -> None:
    result = device(server, "apps", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    assert "wiki" in result.output
    assert "Grafana" in result.output
    result = device(server, "open", "wiki", "--key", str(key_path))
    assert result.exit_code == 1
    assert "no live browser session" in result.output
    server.sessions["s_1"] = {"browser": "Firefox", "ip": "192.0.2.1", "device": "dev_cli"}
    result = device(server, "open", "wiki", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    assert server.opened == [("dev_cli", "wiki")]


def test_sessions_revoke_and_logout(key_path: Path, server: FakeServer) -> None:
    server.sessions["s_1"] = dict(THIS_BROWSER)
    server.sessions["s_2"] = {"browser": "Chrome", "ip": "192.0.2.2", "device": "dev_x"}
    result = device(server, "sessions", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    for text in ("s_1", "s_2", "Firefox", "192.0.2.2", "2030-01-02 03:04"):
        assert text in result.output
    result = device(server, "sessions", "revoke", "s_2", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    assert "s_2" not in server.sessions
    # --key given to the group reaches the subcommand too
    result = device(server, "sessions", "--key", str(key_path), "revoke", "s_9")
    assert result.exit_code == 1
    assert "no such session" in result.output
    result = device(server, "logout", "--key", str(key_path))
    assert result.exit_code == 0, result.output
    assert "signed out 1 browser session(s)" in result.output
    assert server.sessions == {}
    assert "no live sessions" in device(server, "sessions", "--key", str(key_path)).output
