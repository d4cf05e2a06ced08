"""``lychgate init`` on an existing deployment, with bad values, and over a changed https host."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cli.test_cli import lychgate, runner
from lychgate.cli.main import app


def init(data_dir: Path, *options: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    return lychgate("init", "--dir", str(data_dir), *options, env=env)


def settings_file(data_dir: Path) -> dict[str, object]:
    return tomllib.loads((data_dir / "lychgate.toml").read_text())


def said(out: str) -> str:
    """``out`` with rich's line wrapping undone."""
    return " ".join(out.split())


def squeezed(text: str) -> str:
    """``text`` without any white space: rich also folds a word longer than the line (a
    temporary directory's path), in a place that depends on its length."""
    return "".join(text.split())


@pytest.mark.parametrize(
    ("option", "value", "setting", "current"),
    [
        ("--public-url", "http://localhost:46080", "public_url", "'http://localhost:8080'"),
        ("--routing", "subdomains", "routing", "'single-host'"),
        ("--domain", "apps.localhost", "domain", "'localhost'"),
    ],
)
def test_an_option_that_would_change_an_existing_deployment_is_refused(
    data_dir: Path, option: str, value: str, setting: str, current: str
) -> None:
    # It used to be ignored: init printed the old Public URL and changed nothing.
    assert init(data_dir)[0] == 0
    before = (data_dir / "lychgate.toml").read_text()
    code, out = init(data_dir, option, value)
    assert code == 2, out
    text = said(out)
    assert f"{option} {value}: this deployment's {setting} is {current}" in text
    assert squeezed(f"edit {setting} in {data_dir / 'lychgate.toml'}") in squeezed(out)
    assert "Public URL" not in out
    assert (data_dir / "lychgate.toml").read_text() == before


def test_the_refusal_names_the_environment_variable_that_sets_it(data_dir: Path) -> None:
    assert init(data_dir)[0] == 0
    env = {"LYCHGATE_PUBLIC_URL": "http://localhost:46081"}
    code, out = init(data_dir, "--public-url", "http://localhost:46082", env=env)
    assert code == 2, out
    text = said(out)
    assert "public_url is 'http://localhost:46081' (from the environment variable" in text
    assert "change the environment variable LYCHGATE_PUBLIC_URL" in text


def test_options_equal_to_the_settings_in_effect_are_fine(data_dir: Path) -> None:
    options = ("--public-url", "https://Auth.Example.org/", "--routing", "subdomains")
    code, out = init(data_dir, *options, "--domain", "example.org")
    assert code == 0, out
    code, out = init(data_dir, *options, "--domain", "example.org.")
    assert code == 0, out
    assert "Public URL: https://auth.example.org (subdomains)" in out
    assert settings_file(data_dir)["public_url"] == "https://Auth.Example.org/"


@pytest.mark.parametrize(
    "options",
    [
        ("--routing", "bogus"),
        ("--public-url", "http://example.com"),
        ("--public-url", "https://example.com", "--routing", "subdomains"),  # apps under *.com
    ],
)
def test_a_bad_value_leaves_no_directory_behind(tmp_path: Path, options: tuple[str, ...]) -> None:
    where = tmp_path / "new" / "deployment"
    code, out = init(where, *options)
    assert code == 2, out
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("routing", "comment"), [("single-host", "subdomains"), ("subdomains", "single-host")]
)
def test_the_routing_comment_names_the_other_mode(
    data_dir: Path, routing: str, comment: str
) -> None:
    code, out = init(data_dir, "--public-url", "https://auth.example.org", "--routing", routing)
    assert code == 0, out
    assert f'routing = "{routing}"  # or "{comment}"\n' in (data_dir / "lychgate.toml").read_text()


def test_dir_help_names_every_default() -> None:
    code, out = lychgate("init", "--help", env={"COLUMNS": "200"})
    assert code == 0, out
    assert "$LYCHGATE_DATA_DIR, else $XDG_DATA_HOME/lychgate, else ~/.local/share/lychgate" in (
        said(out)
    )


def test_a_changed_https_host_names_ca_rotate(data_dir: Path) -> None:
    # The internal CA is name-constrained to the hosts it was made for: start-up used to say
    # "Move ca.pem and ca.key away", though `lychgate ca rotate` does that safely.
    assert init(data_dir, "--public-url", "https://auth.example.org")[0] == 0
    toml = data_dir / "lychgate.toml"
    toml.write_text(toml.read_text().replace("auth.example.org", "gate.example.net"))
    code, out = init(data_dir)
    assert code == 2, out
    text = said(out)
    assert "the internal CA may not certify gate.example.net" in text
    assert squeezed(f"Run `lychgate ca rotate --dir {data_dir}`") in squeezed(out)
    assert "Move ca.pem" not in text
    code, out = lychgate("ca", "rotate", "--yes", "--dir", str(data_dir))
    assert code == 0, out
    code, out = init(data_dir)
    assert code == 0, out


def test_declining_ca_rotate_says_nothing_changed(data_dir: Path) -> None:
    assert init(data_dir, "--public-url", "https://auth.example.org")[0] == 0
    declined = runner.invoke(app, ["ca", "rotate", "--dir", str(data_dir)], input="n\n")
    assert declined.exit_code == 1
    assert "nothing changed: the internal CA was not replaced" in declined.output


def test_init_on_a_second_node_of_a_deployment_asks_for_its_secrets(tmp_path: Path) -> None:
    # It used to write a secrets.json of its own, silently: replicas then served other keys.
    first, second = tmp_path / "node1", tmp_path / "node2"
    env = {"LYCHGATE_DATABASE_URL": f"sqlite:///{first / 'lychgate.db'}"}
    assert init(first, env=env)[0] == 0
    code, out = init(second, env=env)
    assert code == 2, out
    assert "already holds a deployment (0 users, 1 signing keys)" in said(out)
    assert squeezed(f"copy secrets.json and lychgate.toml from an existing node into {second}") in (
        squeezed(out)
    )
    assert not (second / "secrets.json").exists()
    code, out = init(second, "--new-secrets", env=env)
    assert code == 0, out
    assert "secrets written" in said(out)
