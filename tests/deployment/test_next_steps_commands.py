"""The ``lychgate`` commands that init and its refusals print as the next step.

They dropped ``--dir``: after ``init --dir data-tls`` the printed ``lychgate ca export`` found
no deployment, and the cluster refusal ended "run `lychgate init` again", which made a
deployment in the default directory. It also showed ``postgresql+asyncpg://``, the driver we
run the URL on, which the operator never wrote.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fixtures.store import T0
from lychgate.config import load_settings
from lychgate.deployment.init import prepare_files, prepare_store
from lychgate.deployment.init_options import shown_database_url
from lychgate.deployment.next_steps import ca_export_command, enroll_lines, lychgate_command
from lychgate.errors import ConfigError


def test_the_default_directory_needs_no_dir(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    default = tmp_path / ".local" / "share" / "lychgate"
    assert lychgate_command("ca export", default, env) == "lychgate ca export"
    xdg = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert lychgate_command("ca export", tmp_path / "xdg" / "lychgate", xdg) == "lychgate ca export"
    assert lychgate_command("ca export", default, xdg).endswith(f" --dir {default}")


def test_another_directory_is_named_and_quoted(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    spaced = tmp_path / "my data"
    assert lychgate_command("init", spaced, env) == f"lychgate init --dir '{spaced}'"


def test_lychgate_data_dir_does_not_make_the_default(tmp_path: Path) -> None:
    # Often set for one command only: LYCHGATE_DATA_DIR=D lychgate serve --demo.
    there = tmp_path / "there"
    env = {"HOME": str(tmp_path), "LYCHGATE_DATA_DIR": str(there)}
    assert lychgate_command("ca export", there, env) == f"lychgate ca export --dir {there}"


def test_the_enroll_lines_name_the_ca_and_where_it_comes_from(data_dir: Path) -> None:
    settings = load_settings(data_dir, {}, public_url="https://localhost:18320")
    link = "https://localhost:18320/.lychgate/enroll/abc"
    lines = enroll_lines(link, settings, {}, admin_setup=True)
    assert lines[0] == f'lychgate device enroll {link} --user-name "Your Name" --ca lychgate-ca.pem'
    assert ca_export_command(settings, {}) in lines[-1]
    assert ca_export_command(settings, {}) == (
        f"lychgate ca export --dir {data_dir} > lychgate-ca.pem"
    )
    plain = load_settings(data_dir, {})
    assert enroll_lines(link, plain, {}) == [f"lychgate device enroll {link}"]


def test_a_database_url_is_shown_as_written_without_its_password() -> None:
    shown = shown_database_url("postgres://ada:secret@db.example/lychgate")
    assert shown == "postgresql://ada:***@db.example/lychgate"
    assert shown_database_url("sqlite:////srv/l.db") == "sqlite:////srv/l.db"


async def test_the_cluster_refusal_gives_whole_commands(tmp_path: Path) -> None:
    first, second = tmp_path / "node1", tmp_path / "node 2"
    files = await asyncio.to_thread(prepare_files, first, {}, now=T0)
    await prepare_store(files.settings, T0)
    url = f"sqlite:///{first / 'lychgate.db'}"
    with pytest.raises(ConfigError) as info:
        await asyncio.to_thread(prepare_files, second, {}, database_url=url, now=T0)
    message = info.value.message
    assert f"the database {url} already holds a deployment" in message
    assert f"run `lychgate init --dir '{second}'`." in message
    anew = f"lychgate init --new-secrets --database-url {url} --dir '{second}'"
    assert f"run `{anew}`, copy the new file" in message
    assert "aiosqlite" not in message
