"""A new lychgate.toml holds the values init set up with, those of ``LYCHGATE_*`` variables
included: ``LYCHGATE_PUBLIC_URL=... lychgate init`` printed that URL and a setup link for it,
but wrote the default public_url, so unsetting the variable later moved the deployment."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fixtures.store import T0
from lychgate.config import load_settings
from lychgate.deployment.config_file import config_template
from lychgate.deployment.init import prepare_files


def written(root: Path) -> dict[str, object]:
    with (root / "lychgate.toml").open("rb") as f:
        return tomllib.load(f)


def test_a_public_url_from_the_environment_is_written(tmp_path: Path) -> None:
    root = tmp_path / "d"
    report = prepare_files(root, {"LYCHGATE_PUBLIC_URL": "http://LOCALHOST:24601/"}, now=T0)
    assert report.settings.public_url == "http://localhost:24601"
    assert written(root)["public_url"] == "http://localhost:24601"
    assert load_settings(root, {}).public_url == "http://localhost:24601"  # variable unset


def test_other_options_from_the_environment_are_written(tmp_path: Path) -> None:
    root = tmp_path / "d"
    env = {
        "LYCHGATE_ROUTING": "subdomains",
        "LYCHGATE_LISTEN": "127.0.0.1:27080",
        "lychgate_authz_listen": "127.0.0.1:27081",  # names match in any case
    }
    prepare_files(root, env, now=T0)
    values = written(root)
    assert values["routing"] == "subdomains"
    assert values["listen"] == "127.0.0.1:27080"
    assert values["authz_listen"] == "127.0.0.1:27081"
    assert "domain" not in values  # not set anywhere: still derived from the public host


def test_a_database_url_from_the_environment_stays_out_of_the_file(tmp_path: Path) -> None:
    # The variable keeps a password out of files; init must not copy it into one.
    root = tmp_path / "d"
    database = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    prepare_files(root, {"LYCHGATE_DATABASE_URL": database}, now=T0)
    assert "database_url" not in written(root)


def test_an_existing_config_is_not_rewritten_from_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "d"
    prepare_files(root, {}, now=T0)
    before = (root / "lychgate.toml").read_text()
    prepare_files(root, {"LYCHGATE_LISTEN": "127.0.0.1:27082"}, now=T0)
    assert (root / "lychgate.toml").read_text() == before


def test_the_template_quotes_what_it_writes() -> None:
    text = config_template(public_url="http://localhost:8080", routing=None, domain='a"b')
    assert tomllib.loads(text)["domain"] == 'a"b'
