"""Enrollment and admin setup links printed by ``lychgate user add|enroll-link`` and ``init``."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.cli.main import app
from lychgate.config import load_settings
from lychgate.deployment.enroll import terminal_qr
from lychgate.deployment.layout import Layout
from lychgate.deployment.secrets import load_secrets
from lychgate.device.client import Connector
from lychgate.domain import OneTimeCode
from lychgate.events import InProcessBus
from lychgate.store import open_store
from lychgate.tokens import Purpose, code_hash, read_payload

runner = CliRunner()
LINK = re.compile(
    r"lychgate device enroll (http://localhost:8080/\.lychgate/enroll/([\w-]+))(?: [^\n]*)?\n"
)


def lychgate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def links_in(out: str) -> list[str]:
    """The codes of the enrollment links printed in ``out``."""
    return [m.group(2) for m in LINK.finditer(out)]


def redeem(data_dir: Path, code: str, purpose: str) -> OneTimeCode | None:
    """Use ``code`` the way authz does (one conditional UPDATE); None when refused."""

    async def run() -> OneTimeCode | None:
        async with await open_store(f"sqlite:///{data_dir / 'lychgate.db'}") as store:
            return await store.one_time_codes.redeem(code_hash(code), purpose, datetime.now(UTC))

    return asyncio.run(run())


@pytest.fixture
def deployment(data_dir: Path) -> tuple[Path, str]:
    code, out = lychgate("init", "--dir", str(data_dir))
    assert code == 0, out
    return data_dir, out


def test_init_prints_an_admin_setup_link(deployment: tuple[Path, str]) -> None:
    data_dir, out = deployment
    assert "Admin setup link" in out
    (code,) = links_in(out)
    assert redeem(data_dir, code, Purpose.ENROLL) is None  # only for admin setup
    assert redeem(data_dir, code, Purpose.ADMIN_SETUP) is not None
    assert redeem(data_dir, code, Purpose.ADMIN_SETUP) is None  # once
    assert "█" not in out  # no QR code when stdout is not a terminal


class DeploymentAuthz(httpx.AsyncBaseTransport):
    """The deployment's own authz, in process, as the device reaches it. The device command
    runs each exchange on a loop of its own (asyncio.run), so the store is opened on that loop,
    once per request."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = load_settings(data_dir, {})
        self.secrets = load_secrets(Layout(data_dir).secrets_file)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with await open_store(self.settings.effective_database_url.reveal()) as store:
            bus = InProcessBus()
            ctx = AuthzContext(settings=self.settings, store=store, bus=bus, secrets=self.secrets)
            authz = create_app(ctx)
            try:
                async with authz.router.lifespan_context(authz):
                    answer = await httpx.ASGITransport(app=authz).handle_async_request(request)
                    body = await answer.aread()
            finally:
                await bus.close()
        return httpx.Response(answer.status_code, headers=answer.headers, content=body)


def the_enroll_command(out: str) -> list[str]:
    """The printed device command, split as a shell would, without the program's name."""
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("lychgate device enroll")]
    return shlex.split(line)[1:]


def test_the_printed_setup_command_works_as_printed(
    deployment: tuple[Path, str], tmp_path: Path
) -> None:
    # It used to lack --user-name, which authz needs to create the first admin: the command
    # init printed (and the setup page suggested) failed with "unknown, used or expired".
    data_dir, out = deployment
    argv = the_enroll_command(out)
    assert "--user-name" in argv
    key = tmp_path / "device.json"
    authz = DeploymentAuthz(data_dir)  # reads files: before any loop runs
    connector = Connector(transport=lambda _tls: authz)
    result = runner.invoke(app, [*argv, "--key", str(key)], obj=connector)
    assert result.exit_code == 0, result.output
    assert "for Your Name on http://localhost:8080" in result.output
    code, listing = lychgate("user", "list", "--dir", str(data_dir), "--json")
    assert code == 0, listing
    assert [(u["name"], u["is_admin"]) for u in json.loads(listing)] == [("Your Name", True)]


def test_on_the_internal_ca_the_printed_command_names_the_ca(data_dir: Path) -> None:
    code, out = lychgate("init", "--dir", str(data_dir), "--public-url", "https://gate.example.org")
    assert code == 0, out
    assert the_enroll_command(out)[-2:] == ["--ca", "lychgate-ca.pem"]
    assert f"lychgate ca export --dir {data_dir} > lychgate-ca.pem" in out
    code, out = lychgate("user", "add", "Ada", "--dir", str(data_dir))
    assert code == 0, out
    argv = the_enroll_command(out)
    assert argv[-2:] == ["--ca", "lychgate-ca.pem"]
    assert "--user-name" not in argv  # a user's own link knows the user


def test_every_init_before_an_admin_exists_prints_a_fresh_link(
    deployment: tuple[Path, str],
) -> None:
    data_dir, first = deployment
    code, second = lychgate("init", "--dir", str(data_dir))
    assert code == 0, second
    assert "kept" in second
    (a,), (b,) = links_in(first), links_in(second)
    assert a != b
    assert redeem(data_dir, a, Purpose.ADMIN_SETUP) is not None
    assert redeem(data_dir, b, Purpose.ADMIN_SETUP) is not None


def test_init_prints_no_setup_link_once_an_admin_exists(deployment: tuple[Path, str]) -> None:
    data_dir, _ = deployment
    d = str(data_dir)
    code, out = lychgate(
        "user", "add", "Root", "--email", "root@example.test", "--admin", "--dir", d
    )
    assert code == 0, out
    code, out = lychgate("init", "--dir", d)
    assert code == 0, out
    assert "Admin setup link" not in out
    assert links_in(out) == []


def test_user_add_prints_a_link_that_enrolls_that_user(deployment: tuple[Path, str]) -> None:
    data_dir, _ = deployment
    code, out = lychgate(
        "user", "add", "Alice", "--email", "alice@example.test", "--dir", str(data_dir)
    )
    assert code == 0, out
    assert "added user Alice" in out
    (link,) = links_in(out)
    user_id = re.search(r"\((usr_[\w-]+)\)", out)
    assert user_id is not None
    record = redeem(data_dir, link, Purpose.ENROLL)
    assert record is not None
    assert read_payload(record) == {"user_id": user_id.group(1)}
    assert (record.expires_at - record.created_at).total_seconds() == 24 * 3600


def test_enroll_link_prints_a_fresh_link_for_an_existing_user(
    deployment: tuple[Path, str],
) -> None:
    data_dir, _ = deployment
    d = str(data_dir)
    _, added = lychgate("user", "add", "Alice", "--email", "alice@example.test", "--dir", d)
    fresh = []
    for who in ("alice@EXAMPLE.test", "Alice"):
        code, out = lychgate("user", "enroll-link", who, "--dir", d)
        assert code == 0, out
        fresh += links_in(out)
    assert len(set(fresh + links_in(added))) == 3
    for link in fresh:
        assert redeem(data_dir, link, Purpose.ENROLL) is not None


def test_enroll_link_for_nobody_or_an_ambiguous_name_fails(
    deployment: tuple[Path, str],
) -> None:
    data_dir, _ = deployment
    d = str(data_dir)
    code, out = lychgate("user", "enroll-link", "nobody", "--dir", d)
    assert code == 1
    assert "no user 'nobody'" in out
    lychgate("user", "add", "Sam", "--email", "sam1@example.test", "--dir", d)
    lychgate("user", "add", "Sam", "--email", "sam2@example.test", "--dir", d)
    code, out = lychgate("user", "enroll-link", "Sam", "--dir", d)
    assert code == 1
    assert "2 users are named 'Sam'" in out
    code, out = lychgate("user", "enroll-link", "sam2@example.test", "--dir", d)
    assert code == 0, out


def test_cancel_links_kills_that_users_open_links_only(deployment: tuple[Path, str]) -> None:
    data_dir, init_out = deployment
    d = str(data_dir)
    _, alice = lychgate("user", "add", "Alice", "--email", "alice@example.test", "--dir", d)
    _, again = lychgate("user", "enroll-link", "Alice", "--dir", d)
    _, bob = lychgate("user", "add", "Bob", "--email", "bob@example.test", "--dir", d)
    code, out = lychgate("user", "cancel-links", "alice@example.test", "--dir", d)
    assert code == 0, out
    assert "user Alice" in out
    assert "2 enrollment link(s) cancelled" in out
    for link in links_in(alice) + links_in(again):
        assert redeem(data_dir, link, Purpose.ENROLL) is None
    (bobs,) = links_in(bob)
    (setup,) = links_in(init_out)
    assert redeem(data_dir, bobs, Purpose.ENROLL) is not None
    assert redeem(data_dir, setup, Purpose.ADMIN_SETUP) is not None
    # A fresh link after the cancel works, and a second cancel finds nothing.
    _, fresh = lychgate("user", "enroll-link", "Alice", "--dir", d)
    code, out = lychgate("user", "cancel-links", "Bob", "--dir", d)
    assert "0 enrollment link(s) cancelled" in out
    (link,) = links_in(fresh)
    assert redeem(data_dir, link, Purpose.ENROLL) is not None
    code, out = lychgate("user", "cancel-links", "nobody", "--dir", d)
    assert code == 1
    assert "no user 'nobody'" in out


def test_disable_cancels_links_so_enable_does_not_bring_them_back(
    deployment: tuple[Path, str],
) -> None:
    data_dir, _ = deployment
    d = str(data_dir)
    _, alice = lychgate("user", "add", "Alice", "--email", "alice@example.test", "--dir", d)
    (link,) = links_in(alice)
    code, out = lychgate("user", "disable", "Alice", "--dir", d)
    assert code == 0, out
    code, out = lychgate("user", "enable", "Alice", "--dir", d)
    assert code == 0, out
    assert redeem(data_dir, link, Purpose.ENROLL) is None


def test_terminal_qr_is_drawn_with_half_blocks() -> None:
    qr = terminal_qr("http://localhost:8080/.lychgate/enroll/" + "A" * 43)
    lines = qr.splitlines()
    assert len(lines) > 10
    assert len({len(line) for line in lines}) == 1  # a square of equal lines
    assert set("".join(lines)) <= {"█", "▀", "▄", " "}
