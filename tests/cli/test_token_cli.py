"""``lychgate token mint``: only tokens the gateway would accept, for as long as asked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cli.test_cli import lychgate


@pytest.fixture
def d(data_dir: Path) -> str:
    """A deployment with an admins-only app, an open one, an admin and a plain user."""
    where = str(data_dir)
    assert lychgate("init", "--dir", where)[0] == 0
    for slug, policy in (("wiki", "any-user"), ("grafana", "admins")):
        code, out = lychgate(
            "app", "add", "--dir", where, "--slug", slug, "--name", slug.title(),
            "--upstream", "http://127.0.0.1:3000", "--policy", policy,
        )  # fmt: skip
        assert code == 0, out
    for name, email, *admin in (("Root", "root@example.test", "--admin"), ("Bob", "b@x.test")):
        code, out = lychgate("user", "add", name, "--email", email, *admin, "--dir", where)
        assert code == 0, out
    return where


def mint(d: str, *args: str) -> tuple[int, str]:
    return lychgate("token", "mint", "--dir", d, *args)


def claims(out: str) -> dict[str, object]:
    payload = out.split("\n")[0].split("=", 1)[1].split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def test_an_admins_only_app_is_refused_for_a_plain_user(d: str) -> None:
    # It used to succeed, and the gateway then answered every request with a 403.
    code, out = mint(d, "--app", "grafana", "--user", "b@x.test")
    assert code == 1
    text = " ".join(out.split())
    assert "app 'grafana' is for admins only (policy admins) and 'Bob' is not an admin" in text
    assert not out.startswith("lychgate=")
    code, out = mint(d, "--app", "grafana", "--user", "root@example.test")
    assert code == 0, out
    assert claims(out)["adm"] is True


@pytest.mark.parametrize(
    ("ttl", "said"),
    [
        ("0", "ttl: must be at least 1 second"),
        ("-5", "ttl: must be at least 1 second"),
        ("999999", "ttl: must be at most session_ttl (43200 s)"),
        # No session_ttl allows it: raising that would not help.
        ("99999999999999999999", "ttl: must be at most 34560000 s (400 days, the longest"),
    ],
)
def test_a_ttl_out_of_range_is_refused(d: str, ttl: str, said: str) -> None:
    # 0 used to mean the default, and 999999 was cut to session_ttl, both silently.
    code, out = mint(d, "--app", "wiki", "--user", "b@x.test", "--ttl", ttl)
    assert code == 1
    assert said in " ".join(out.split())


@pytest.mark.parametrize("ttl", [1, 43200])
def test_a_ttl_in_range_is_the_tokens_lifetime(d: str, ttl: int) -> None:
    code, out = mint(d, "--app", "wiki", "--user", "b@x.test", "--ttl", str(ttl))
    assert code == 0, out
    token = claims(out)
    assert isinstance(token["exp"], int)
    assert isinstance(token["iat"], int)
    assert token["exp"] - token["iat"] == ttl


def test_the_user_may_be_named_as_in_the_user_commands(d: str) -> None:
    code, out = mint(d, "--app", "wiki", "--user", "Bob")
    assert code == 0, out
    _, listing = lychgate("user", "list", "--dir", d, "--json")
    bob = next(u for u in json.loads(listing) if u["name"] == "Bob")
    assert claims(out)["sub"] == bob["id"]
    assert lychgate("user", "add", "Bob", "--email", "bob2@x.test", "--dir", d)[0] == 0
    code, out = mint(d, "--app", "wiki", "--user", "Bob")
    assert code == 1
    assert "2 users are named 'Bob'; give an e-mail or id" in " ".join(out.split())
    code, out = mint(d, "--app", "wiki", "--user", "nobody")
    assert code == 1
    assert "no user 'nobody'" in out
