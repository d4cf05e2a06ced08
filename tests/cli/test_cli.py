"""The CLI end to end over a real deployment directory (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from lychgate import __version__
from lychgate.cli.ca import certified_names
from lychgate.cli.main import app
from lychgate.config import Settings
from lychgate.errors import ConfigError

runner = CliRunner()


def lychgate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
def deployment(data_dir: Path) -> Path:
    code, out = lychgate("init", "--dir", str(data_dir))
    assert code == 0, out
    return data_dir


def test_version() -> None:
    assert lychgate("--version") == (0, f"lychgate {__version__}\n")


def test_no_arguments_shows_help() -> None:
    _, out = lychgate()
    assert "init" in out
    assert "app" in out


def test_init_creates_private_material(deployment: Path) -> None:
    assert (deployment / "lychgate.toml").exists()
    for private in ("secrets.json", "lychgate.db"):
        mode = stat.S_IMODE((deployment / private).stat().st_mode)
        assert mode == 0o600, private


def test_init_is_idempotent(deployment: Path) -> None:
    secrets_before = (deployment / "secrets.json").read_bytes()
    (deployment / "lychgate.toml").write_text('public_url = "http://app.localhost:9000"\n')
    lychgate(
        "app",
        "add",
        "--dir",
        str(deployment),
        "--slug",
        "a",
        "--name",
        "A",
        "--upstream",
        "http://127.0.0.1:1",
    )
    code, out = lychgate("init", "--dir", str(deployment))
    assert code == 0, out
    assert "kept" in out
    assert (deployment / "secrets.json").read_bytes() == secrets_before
    assert "app.localhost:9000" in (deployment / "lychgate.toml").read_text()
    _, listing = lychgate("app", "list", "--dir", str(deployment), "--json")
    assert [a["slug"] for a in json.loads(listing)] == ["a"]
    _, keys = lychgate("keys", "list", "--dir", str(deployment))
    assert keys.count("signing") == 1


def test_app_add_list_remove(deployment: Path) -> None:
    d = str(deployment)
    code, out = lychgate(
        "app",
        "add",
        "--dir",
        d,
        "--slug",
        "wiki",
        "--name",
        "Wiki",
        "--upstream",
        "http://127.0.0.1:3000",
        "--websockets",
        "--policy",
        "admins",
    )
    assert code == 0, out
    code, out = lychgate("app", "list", "--dir", d, "--json")
    (wiki,) = json.loads(out)
    assert wiki["upstream"] == "http://127.0.0.1:3000"
    assert wiki["websockets"] is True
    assert wiki["policy"] == "admins"
    code, out = lychgate(
        "app",
        "add",
        "--dir",
        d,
        "--slug",
        "wiki",
        "--name",
        "Again",
        "--upstream",
        "http://127.0.0.1:3001",
    )
    assert code == 1
    assert "slug 'wiki' exists" in out
    assert lychgate("app", "remove", "wiki", "--dir", d)[0] == 0
    code, out = lychgate("app", "remove", "wiki", "--dir", d)
    assert code == 1
    assert "no app 'wiki'" in out


def _add_wiki(d: str, *extra: str) -> None:
    code, out = lychgate(
        "app", "add", "--dir", d, "--slug", "wiki", "--name", "Wiki", "--upstream",
        "http://127.0.0.1:3000", *extra,
    )  # fmt: skip
    assert code == 0, out


def _wiki(d: str) -> dict[str, object]:
    code, out = lychgate("app", "list", "--dir", d, "--json")
    assert code == 0, out
    (wiki,) = json.loads(out)
    assert isinstance(wiki, dict)
    return wiki


def test_cross_origin_writes_are_off_unless_asked_for(deployment: Path) -> None:
    d = str(deployment)
    _add_wiki(d)
    assert _wiki(d)["allow_cross_origin"] is False
    lychgate("app", "remove", "wiki", "--dir", d)
    _add_wiki(d, "--allow-cross-origin")
    assert _wiki(d)["allow_cross_origin"] is True
    _, out = lychgate("app", "list", "--dir", d)
    assert "cross-origin" in out


def test_app_update_changes_only_what_is_given(deployment: Path) -> None:
    d = str(deployment)
    _add_wiki(d, "--websockets", "--policy", "admins")
    code, out = lychgate(
        "app", "update", "wiki", "--dir", d, "--allow-cross-origin", "--upstream",
        "http://127.0.0.1:3001", "--read-timeout", "5",
    )  # fmt: skip
    assert code == 0, out
    assert "updated wiki: allow_cross_origin, read_timeout, upstream" in out
    wiki = _wiki(d)
    assert (wiki["allow_cross_origin"], wiki["upstream"], wiki["read_timeout"]) == (
        True,
        "http://127.0.0.1:3001",
        5.0,
    )
    assert (wiki["websockets"], wiki["policy"], wiki["name"]) == (True, "admins", "Wiki")
    code, out = lychgate(
        "app", "update", "wiki", "--dir", d, "--no-cross-origin", "--no-websockets"
    )
    assert code == 0, out
    assert (_wiki(d)["allow_cross_origin"], _wiki(d)["websockets"]) == (False, False)


def test_app_request_limits_from_add_through_update(deployment: Path) -> None:
    d = str(deployment)
    _add_wiki(d, "--max-header-bytes", "8192", "--max-headers", "40", "--idle-timeout", "15")
    wiki = _wiki(d)
    assert (wiki["max_header_bytes"], wiki["max_headers"], wiki["idle_timeout"]) == (8192, 40, 15.0)
    code, out = lychgate("app", "update", "wiki", "--dir", d, "--idle-timeout", "2.5")
    assert code == 0, out
    assert "updated wiki: idle_timeout" in out
    wiki = _wiki(d)
    assert (wiki["max_header_bytes"], wiki["max_headers"], wiki["idle_timeout"]) == (8192, 40, 2.5)
    code, out = lychgate(
        "app", "update", "wiki", "--dir", d, "--max-header-bytes", "1048576", "--max-headers", "8"
    )
    assert code == 0, out
    assert "updated wiki: max_header_bytes, max_headers" in out
    wiki = _wiki(d)
    assert (wiki["max_header_bytes"], wiki["max_headers"], wiki["idle_timeout"]) == (
        1048576,
        8,
        2.5,
    )


def test_app_request_limits_default_to_the_listeners(deployment: Path) -> None:
    d = str(deployment)
    _add_wiki(d)
    wiki = _wiki(d)
    assert (wiki["max_header_bytes"], wiki["max_headers"], wiki["idle_timeout"]) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--max-header-bytes", "1023", "max_header_bytes"),
        ("--max-headers", "1001", "max_headers"),
        ("--idle-timeout", "0", "idle_timeout"),
    ],
)
def test_app_request_limits_out_of_bounds_name_the_field(
    deployment: Path, option: str, value: str, field: str
) -> None:
    d = str(deployment)
    code, out = lychgate(
        "app", "add", "--dir", d, "--slug", "wiki", "--name", "Wiki", "--upstream",
        "http://127.0.0.1:3000", option, value,
    )  # fmt: skip
    assert code == 1
    assert f"{field}:" in out
    _add_wiki(d, "--max-headers", "30")
    code, out = lychgate("app", "update", "wiki", "--dir", d, option, value)
    assert code == 1
    assert f"{field}:" in out
    assert (_wiki(d)["max_headers"], _wiki(d)["idle_timeout"]) == (30, None)


def test_app_help_describes_the_request_limits() -> None:
    for command in ("add", "update"):
        code, out = lychgate("app", command, "--help")
        assert code == 0, out
        for option in ("--max-header-bytes", "--max-headers", "--idle-timeout"):
            assert option in out


def test_app_update_checks_like_add_and_names_the_field(deployment: Path) -> None:
    d = str(deployment)
    _add_wiki(d)
    code, out = lychgate("app", "update", "wiki", "--dir", d, "--upstream", "ftp://x")
    assert code == 1
    assert "upstream" in out
    code, out = lychgate("app", "update", "nope", "--dir", d, "--name", "X")
    assert code == 1
    assert "no app 'nope'" in out
    code, out = lychgate("app", "update", "wiki", "--dir", d)
    assert code == 2
    assert "nothing to change" in out
    assert _wiki(d)["upstream"] == "http://127.0.0.1:3000"


def test_bad_app_names_the_field(deployment: Path) -> None:
    code, out = lychgate(
        "app",
        "add",
        "--dir",
        str(deployment),
        "--slug",
        "Bad Slug",
        "--name",
        "x",
        "--upstream",
        "http://127.0.0.1:1",
    )
    assert code == 1
    assert "slug:" in out


def test_dir_defaults_to_the_environment(deployment: Path) -> None:
    code, out = lychgate("app", "list", env={"LYCHGATE_DATA_DIR": str(deployment)})
    assert code == 0, out
    assert "no apps yet" in out


def test_a_config_error_names_the_key_and_exits_2(deployment: Path) -> None:
    (deployment / "lychgate.toml").write_text("sesion_ttl = 5\n")
    code, out = lychgate("app", "list", "--dir", str(deployment))
    assert code == 2
    assert "sesion_ttl" in out


@pytest.mark.parametrize(
    "command",
    [
        ("user", "list"),
        ("user", "add", "Ada"),
        ("app", "list"),
        ("app", "remove", "wiki"),
        ("keys", "list"),
        ("token", "mint", "--app", "wiki", "--user", "ada@example.com"),
    ],
)
@pytest.mark.parametrize("exists", [True, False], ids=["empty dir", "no dir"])
def test_a_directory_without_a_deployment_is_named(
    tmp_path: Path, command: tuple[str, ...], exists: bool
) -> None:
    # A mistyped --dir used to get "no users yet" and a stray empty database of its own, or,
    # where the directory did not exist, a database error naming neither it nor the fix.
    where = tmp_path / "typo"
    if exists:
        where.mkdir()
    code, out = lychgate(*command, "--dir", str(where))
    assert code == 2
    said = " ".join(out.split())
    assert f"no deployment in {where}" in said
    assert f"lychgate init --dir {where}" in said
    assert not (where / "lychgate.db").exists()


def test_plain_http_on_a_public_host_is_refused(data_dir: Path) -> None:
    code, out = lychgate("init", "--dir", str(data_dir), "--public-url", "http://example.com")
    assert code == 2
    assert "plain HTTP" in out
    assert not (data_dir / "lychgate.toml").exists()


def test_https_init_makes_a_ca_that_exports(data_dir: Path) -> None:
    code, out = lychgate(
        "init",
        "--dir",
        str(data_dir),
        "--public-url",
        "https://auth.example.com",
        "--routing",
        "subdomains",
    )
    assert code == 0, out
    code, pem = lychgate("ca", "export", "--dir", str(data_dir))
    assert code == 0
    assert pem.startswith("-----BEGIN CERTIFICATE-----")


def test_ca_rotate_asks_then_replaces_the_ca(data_dir: Path) -> None:
    d = str(data_dir)
    code, out = lychgate("init", "--dir", d, "--public-url", "https://auth.example.com")
    assert code == 0, out
    _, first = lychgate("ca", "export", "--dir", d)
    declined = runner.invoke(app, ["ca", "rotate", "--dir", d], input="n\n")
    assert declined.exit_code == 1
    assert "Replace the CA?" in declined.output
    assert lychgate("ca", "export", "--dir", d)[1] == first
    code, out = lychgate("ca", "rotate", "--yes", "--dir", d)
    assert code == 0, out
    assert "new internal CA for auth.example.com" in out
    assert "lychgate ca export" in out
    _, second = lychgate("ca", "export", "--dir", d)
    assert second.startswith("-----BEGIN CERTIFICATE-----")
    assert second != first
    assert [p.name for p in (data_dir / "tls").glob("ca-retired-*.pem")] != []


def test_ca_rotate_without_the_internal_ca_is_an_error(deployment: Path) -> None:
    code, out = lychgate("ca", "rotate", "--yes", "--dir", str(deployment))
    assert code == 2
    assert "does not use the internal CA" in out


def test_ca_export_on_plain_http_says_there_is_no_internal_ca(deployment: Path) -> None:
    # It used to say "run lychgate init first", which makes no CA on plain HTTP: a loop.
    code, out = lychgate("ca", "export", "--dir", str(deployment))
    said = " ".join(out.split())
    assert code == 2
    assert "does not use the internal CA: its public_url (http://" in said
    assert "is plain HTTP, and only https has one" in said
    assert "tls_cert" not in said  # it named a setting this deployment does not have
    assert "lychgate init" not in said
    assert said == " ".join(lychgate("ca", "rotate", "--yes", "--dir", str(deployment))[1].split())


def test_ca_export_with_your_own_certificate_says_so(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        public_url="https://gw.example.com",
        tls_cert=tmp_path / "gw.pem",
        tls_key=tmp_path / "gw.key",
    )
    with pytest.raises(ConfigError, match=r"serves your own certificate \(tls_cert\)"):
        certified_names(settings)


@pytest.mark.parametrize("command", [["export"], ["rotate", "--yes"]])
def test_ca_commands_on_a_directory_with_no_deployment_say_so(
    tmp_path: Path, command: list[str]
) -> None:
    # It used to say "does not use the internal CA (plain HTTP...)" for a mistyped --dir.
    for missing in (tmp_path / "nonexistent", tmp_path):
        code, out = lychgate("ca", *command, "--dir", str(missing))
        said = " ".join(out.split())
        assert code == 2
        assert f"no deployment in {missing}" in said
        assert "internal CA" not in said
    assert list(tmp_path.iterdir()) == []  # and nothing made


def test_ca_export_when_the_internal_ca_is_missing_says_to_run_init(data_dir: Path) -> None:
    d = str(data_dir)
    code, out = lychgate("init", "--dir", d, "--public-url", "https://auth.example.com")
    assert code == 0, out
    for name in ("ca.pem", "ca.key"):
        (data_dir / "tls" / name).unlink()
    code, out = lychgate("ca", "export", "--dir", d)
    said = " ".join(out.split())
    assert code == 2
    assert f"there is no internal CA in {data_dir / 'tls'}" in said
    assert "run `lychgate init` first" in said


def test_users_and_minted_tokens(deployment: Path) -> None:
    d = str(deployment)
    lychgate(
        "app",
        "add",
        "--dir",
        d,
        "--slug",
        "wiki",
        "--name",
        "Wiki",
        "--upstream",
        "http://127.0.0.1:3000",
    )
    code, out = lychgate("user", "add", "Alice", "--email", "alice@Example.com", "--dir", d)
    assert code == 0, out
    code, out = lychgate("user", "list", "--dir", d, "--json")
    (alice,) = json.loads(out)
    assert alice["email"] == "alice@example.com"
    assert alice["is_admin"] is False
    code, out = lychgate(
        "token", "mint", "--dir", d, "--app", "wiki", "--user", "alice@example.com"
    )
    assert code == 0, out
    assert out.startswith("lychgate=ey")
    # The token names its session by handle, and so does the line about it: a session's id
    # is a sign-in cookie's value, which a script given a token for one app must not get.
    payload = out.split("\n")[0].split(".")[1]
    sid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
    assert len(sid) == 22  # a handle, not an id (ses_ and 22 characters)
    assert f"session {sid}, expires" in out
    code, out = lychgate(
        "token", "mint", "--dir", d, "--app", "nope", "--user", "alice@example.com"
    )
    assert code == 1
    assert "no app 'nope'" in out


def test_user_disable_and_enable(deployment: Path) -> None:
    d = str(deployment)
    lychgate("user", "add", "Root", "--email", "root@example.test", "--admin", "--dir", d)
    lychgate("user", "add", "Bob", "--email", "bob@example.test", "--dir", d)
    code, out = lychgate("user", "disable", "bob@example.test", "--dir", d)
    assert code == 0, out
    assert "disabled user Bob" in out
    assert "0 session(s) ended" in out
    code, out = lychgate("user", "list", "--dir", d, "--json")
    assert {u["name"]: u["disabled"] for u in json.loads(out)} == {"Root": False, "Bob": True}
    code, out = lychgate("token", "mint", "--dir", d, "--app", "x", "--user", "bob@example.test")
    assert code != 0  # a disabled user gets no token
    code, out = lychgate("user", "disable", "Root", "--dir", d)
    assert code == 1
    assert "last admin" in out
    code, out = lychgate("user", "enable", "Bob", "--dir", d)
    assert code == 0, out
    assert "enabled user Bob" in out
    code, out = lychgate("user", "disable", "nobody", "--dir", d)
    assert code == 1
    assert "no user 'nobody'" in out


def test_user_update_makes_and_unmakes_admins(deployment: Path) -> None:
    # `user disable` on the last admin says to make another user an admin: this is how.
    d = str(deployment)
    lychgate("user", "add", "Root", "--email", "root@example.test", "--admin", "--dir", d)
    lychgate("user", "add", "Bob", "--email", "bob@example.test", "--dir", d)
    code, out = lychgate("user", "disable", "Root", "--dir", d)
    assert code == 1
    assert "lychgate user update NAME --admin" in " ".join(out.split())
    code, out = lychgate("user", "update", "Bob", "--admin", "--dir", d)
    assert code == 0, out
    assert "user Bob" in out
    assert "is an admin" in out
    code, out = lychgate("user", "update", "Root", "--no-admin", "--dir", d)
    assert code == 0, out
    assert "is not an admin" in out
    code, out = lychgate("user", "list", "--dir", d, "--json")
    assert {u["name"]: u["is_admin"] for u in json.loads(out)} == {"Root": False, "Bob": True}
    code, out = lychgate("user", "update", "bob@example.test", "--no-admin", "--dir", d)
    assert code == 1
    assert "last admin" in out
    code, out = lychgate("user", "update", "Bob", "--dir", d)
    assert code == 2
    assert "nothing to change" in out


def test_keys_rotate_keeps_the_old_key_verifying(deployment: Path) -> None:
    d = str(deployment)
    code, out = lychgate("keys", "rotate", "--dir", d)
    assert code == 0, out
    assert "signs from" in out
    assert "retired" in out
    _, listing = lychgate("keys", "list", "--dir", d, env={"COLUMNS": "200"})
    # The new key is published first; the old one signs until it takes over.
    assert listing.count("published, signs from") == 1
    assert listing.count("signing until") == 1
    assert "verifies until" in listing


def test_keys_rotate_compromised_drops_the_old_keys(deployment: Path) -> None:
    d = str(deployment)
    lychgate("keys", "rotate", "--dir", d)
    code, out = lychgate("keys", "rotate", "--compromised", "--dir", d)
    assert code == 0, out
    assert out.count("dropped") == 2
    _, listing = lychgate("keys", "list", "--dir", d, env={"COLUMNS": "200"})
    assert listing.count("signing") == 1
    assert "verifies until" not in listing
    assert "published" not in listing


@pytest.mark.postgres
def test_app_commands_on_postgres(data_dir: Path, pg_url: str) -> None:
    env = {"LYCHGATE_DATABASE_URL": pg_url}
    d = str(data_dir)
    code, out = lychgate("init", "--dir", d, env=env)
    assert code == 0, out
    assert "PostgreSQL" in out
    code, out = lychgate(
        "app",
        "add",
        "--dir",
        d,
        "--slug",
        "pgwiki",
        "--name",
        "Wiki",
        "--upstream",
        "http://127.0.0.1:3000",
        env=env,
    )
    assert code == 0, out
    code, out = lychgate("app", "list", "--dir", d, "--json", env=env)
    assert "pgwiki" in [a["slug"] for a in json.loads(out)]
    assert os.environ.get("LYCHGATE_DATABASE_URL") is None


@pytest.mark.postgres
def test_a_database_error_says_what_the_driver_said(deployment: Path, pg_url: str) -> None:
    # It used to say only "database error (DBAPIError)" or "(ConnectionRefusedError)".
    missing = make_url(pg_url).set(database=f"lychgate_missing_{secrets.token_hex(4)}")
    env = {"LYCHGATE_DATABASE_URL": missing.set(password="hunter2").render_as_string(False)}
    code, out = lychgate("app", "list", "--dir", str(deployment), env=env)
    said = " ".join(out.split())
    assert code == 1
    assert f'database "{missing.database}" does not exist' in said
    assert "hunter2" not in said
    refused = {"LYCHGATE_DATABASE_URL": "postgresql://ada:hunter2@127.0.0.1:1/lychgate"}
    code, out = lychgate("app", "list", "--dir", str(deployment), env=refused)
    said = " ".join(out.split())
    assert code == 1
    assert "database connection failed (ConnectionRefusedError): " in said
    assert "hunter2" not in said


def test_a_second_user_of_the_same_name_is_noted_with_the_way_to_name_them(
    deployment: Path,
) -> None:
    # It passed silently; every later command that took the name then refused it.
    d = str(deployment)
    code, out = lychgate("user", "add", "You", "--dir", d)
    assert code == 0, out
    assert "users are now named" not in out
    code, out = lychgate("user", "add", "You", "--email", "you@example.test", "--dir", d)
    assert code == 0, out
    assert "note: 2 users are now named 'You'" in out
    code, out = lychgate("user", "enroll-link", "You", "--dir", d)
    assert code != 0
    assert "2 users are named 'You'" in out
    code, out = lychgate("user", "enroll-link", "you@example.test", "--dir", d)
    assert code == 0, out
