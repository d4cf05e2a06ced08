"""``lychgate init --database-url``: a PostgreSQL deployment in one command, and its other nodes.

The option used to be missing: a new user made an SQLite deployment first, then added
database_url to lychgate.toml by hand and ran init again, and the unused lychgate.db stayed.
"""

from __future__ import annotations

import shutil
import stat
import tomllib
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cli.test_init_cli import init, said, settings_file, squeezed
from lychgate.deployment.config_file import config_template

PASSWORD = "hunter2"
ELSEWHERE = f"postgresql://ada:{PASSWORD}@db.example/lychgate"


def with_password(url: str, password: str = PASSWORD) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_init_writes_the_database_url_and_makes_no_sqlite_file(data_dir: Path, pg_url: str) -> None:
    url = with_password(pg_url)
    code, out = init(data_dir, "--database-url", url)
    assert code == 0, out
    assert "store ready PostgreSQL" in said(out)
    assert PASSWORD not in out
    assert settings_file(data_dir)["database_url"] == url
    assert stat.S_IMODE((data_dir / "lychgate.toml").stat().st_mode) == 0o600
    assert not (data_dir / "lychgate.db").exists()
    # Later commands need no environment variable: lychgate.toml names the database.
    code, out = init(data_dir)
    assert code == 0, out
    assert "store ready PostgreSQL" in said(out)
    assert "keys kept" in said(out)


@pytest.mark.postgres
def test_a_second_node_with_the_same_database_url_joins(tmp_path: Path, pg_url: str) -> None:
    first, second = tmp_path / "node1", tmp_path / "node2"
    url = with_password(pg_url)
    assert init(first, "--database-url", url)[0] == 0
    second.mkdir(mode=0o700)
    for name in ("secrets.json", "lychgate.toml"):
        shutil.copy2(first / name, second / name)
    # postgres:// is another spelling of the same database.
    same = url.replace("postgresql://", "postgres://", 1)
    code, out = init(second, "--database-url", same)
    assert code == 0, out
    text = said(out)
    assert "config kept" in text
    assert "secrets kept" in text
    assert "keys kept" in text
    assert not (second / "lychgate.db").exists()
    other = make_url(url).set(database="lychgate_other").render_as_string(hide_password=False)
    code, out = init(second, "--database-url", other)
    assert code == 2, out
    assert "this deployment's database_url is 'postgresql://postgres:***@" in said(out)
    assert PASSWORD not in out


def test_another_database_url_on_an_existing_deployment_is_refused(data_dir: Path) -> None:
    assert init(data_dir)[0] == 0
    before = (data_dir / "lychgate.toml").read_text()
    code, out = init(data_dir, "--database-url", ELSEWHERE)
    assert code == 2, out
    text = said(out)
    assert "--database-url 'postgresql://ada:***@db.example/lychgate': " in text
    assert "this deployment's database_url is 'sqlite:///" in text
    assert "(the default)" in text
    assert squeezed(f"edit database_url in {data_dir / 'lychgate.toml'}") in squeezed(out)
    assert PASSWORD not in out
    assert (data_dir / "lychgate.toml").read_text() == before


def test_a_refusal_over_another_password_says_so(data_dir: Path) -> None:
    assert init(data_dir)[0] == 0
    toml = data_dir / "lychgate.toml"
    toml.write_text(toml.read_text() + f'database_url = "{ELSEWHERE}"\n')
    code, out = init(data_dir, "--database-url", ELSEWHERE.replace(PASSWORD, "swordfish"))
    assert code == 2, out
    assert "lychgate' with another password (from" in said(out)
    assert PASSWORD not in out
    assert "swordfish" not in out


@pytest.mark.parametrize(
    "url",
    ["mysql://ada@db.example/lychgate", "postgresql://ada@db.example", "not a URL"],
)
def test_a_bad_database_url_leaves_no_directory_behind(tmp_path: Path, url: str) -> None:
    where = tmp_path / "new" / "deployment"
    code, out = init(where, "--database-url", url)
    assert code == 2, out
    assert "database_url: " in out
    assert not (tmp_path / "new").exists()


def test_an_unreachable_database_leaves_nothing_behind(tmp_path: Path) -> None:
    # init asks the database whether it holds a deployment before it writes anything.
    where = tmp_path / "new"
    code, out = init(where, "--database-url", f"postgresql://ada:{PASSWORD}@127.0.0.1:1/lychgate")
    assert code == 1, out
    assert PASSWORD not in out
    assert not where.exists()


def test_an_environment_variable_that_would_override_the_option_is_refused(
    tmp_path: Path,
) -> None:
    # The variable takes precedence over lychgate.toml: the deployment would be made in its
    # database, while the file init writes names another.
    where = tmp_path / "new"
    env = {"LYCHGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    code, out = init(where, "--database-url", ELSEWHERE, env=env)
    assert code == 2, out
    text = said(out)
    assert "the environment variable LYCHGATE_DATABASE_URL sets database_url to" in text
    assert "Unset LYCHGATE_DATABASE_URL" in text
    assert PASSWORD not in out
    assert not where.exists()


def test_the_template_writes_the_database_url_as_a_toml_string() -> None:
    url = 'postgresql://ada:p"w\\d\t\x7f#é@db.example/lychgate'
    text = config_template(public_url=None, routing=None, domain=None, database_url=url)
    assert tomllib.loads(text)["database_url"] == url
    assert "# database_url" not in text


def test_the_template_without_a_database_url_names_it_in_a_comment() -> None:
    text = config_template(public_url=None, routing=None, domain=None)
    assert "database_url" not in tomllib.loads(text)
    assert '# database_url = "postgresql://lychgate@db/lychgate"' in text
