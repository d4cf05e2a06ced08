"""What ``lychgate device enroll`` says when the setup link of ``init`` lacks --user-name,
against the deployment's own authz."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.test_enroll_cli import DeploymentAuthz, lychgate, the_enroll_command
from lychgate.cli.main import app
from lychgate.device.client import Connector

runner = CliRunner()
NAME_REQUIRED = (
    "error: this is an admin setup link: give the new admin's name with --user-name NAME "
    "(and --email)"
)


@pytest.fixture
def setup_link(data_dir: Path) -> str:
    code, out = lychgate("init", "--dir", str(data_dir))
    assert code == 0, out
    return the_enroll_command(out)[2]


def enroll(data_dir: Path, key: Path, *args: str) -> tuple[int, str]:
    authz = DeploymentAuthz(data_dir)  # reads files: before any loop runs
    connector = Connector(transport=lambda _tls: authz)
    argv = ["device", "enroll", *args, "--key", str(key)]
    result = runner.invoke(app, argv, obj=connector, env={"COLUMNS": "200"})
    return result.exit_code, " ".join(result.output.split())


def test_a_setup_link_without_a_name_says_just_that(
    data_dir: Path, setup_link: str, tmp_path: Path
) -> None:
    key = tmp_path / "device.json"
    assert enroll(data_dir, key, setup_link) == (1, NAME_REQUIRED)
    assert not key.exists()
    code, out = enroll(data_dir, key, setup_link, "--user-name", "Root")  # not burnt
    assert code == 0, out
    assert "for Root on http://localhost:8080" in out


def test_a_made_up_code_is_refused_as_before(
    data_dir: Path, setup_link: str, tmp_path: Path
) -> None:
    made_up = setup_link.rsplit("/", 1)[0] + "/" + "x" * 43
    code, out = enroll(data_dir, tmp_path / "device.json", made_up)
    assert code == 1
    assert out == "error: enrollment: unknown, used, cancelled or expired enrollment code"
