"""Enrollment and admin setup links printed by ``lychgate user add|enroll-link`` and ``init``."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lychgate.cli.main import app
from lychgate.deployment.enroll import terminal_qr
from lychgate.domain import OneTimeCode
from lychgate.store import open_store
from lychgate.tokens import Purpose, code_hash, read_payload

runner = CliRunner()
LINK = re.compile(r"lychgate device enroll (http://localhost:8080/\.lychgate/enroll/([\w-]+))\n")


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


def test_terminal_qr_is_drawn_with_half_blocks() -> None:
    qr = terminal_qr("http://localhost:8080/.lychgate/enroll/" + "A" * 43)
    lines = qr.splitlines()
    assert len(lines) > 10
    assert len({len(line) for line in lines}) == 1  # a square of equal lines
    assert set("".join(lines)) <= {"█", "▀", "▄", " "}
