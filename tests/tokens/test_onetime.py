"""One-time codes and links: entropy and hashing (the store redeems them:
tests/store/test_one_time_codes.py); and no secret compared with ``==`` anywhere it is handled."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

import lychgate.tokens
from fixtures.keys import KEY_NOW
from lychgate.domain import OneTimeCode
from lychgate.errors import UsageError
from lychgate.tokens import (
    Purpose,
    code_hash,
    make_one_time,
    new_code,
    read_payload,
)

TTL = timedelta(seconds=60)


def _made() -> tuple[str, OneTimeCode]:
    return make_one_time(Purpose.HANDOFF, {"sid": "sess-1", "app": "wiki"}, KEY_NOW, TTL)


def test_codes_are_long_random_and_url_safe() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", code)  # 43 base64url chars = 256 bits


def test_code_hash_is_sha256() -> None:
    assert code_hash("abc") == hashlib.sha256(b"abc").digest()
    assert len(code_hash(new_code())) == 32
    assert code_hash("\udcff") != code_hash("")  # lone surrogates hash instead of raising


def test_make_one_time_stores_only_the_hash() -> None:
    code, record = _made()
    assert record.code_hash == code_hash(code)
    assert code not in repr(record)
    assert code not in record.payload
    assert record.purpose == "handoff"
    assert record.created_at == KEY_NOW
    assert record.expires_at == KEY_NOW + TTL
    assert record.used_at is None
    assert read_payload(record) == {"sid": "sess-1", "app": "wiki"}


def test_read_payload_wants_an_object() -> None:
    _, record = _made()
    with pytest.raises(UsageError):
        read_payload(replace(record, payload="[1, 2]"))


def test_make_one_time_needs_a_positive_ttl() -> None:
    with pytest.raises(UsageError):
        make_one_time(Purpose.ENROLL, {}, KEY_NOW, timedelta(0))


#: Names that look like a code, hash, tag, signature or bearer secret. Not a "code": an HTTP
#: ``status_code`` (authz compares it with 429) and ``encode``/``decode`` (authz compares the
#: raw path with the encoded path; ``code.encode()`` still matches on ``code``). ``token``,
#: ``authorization`` and ``bearer`` name the internal API's secret and its header.
_SECRETISH = re.compile(
    r"hash|digest|(?<!status_)(?<!en)(?<!de)code|secret|signature|\btag\b|mac\b"
    r"|token|authorization|bearer|\bstates?\b|nonce|csrf",
    re.IGNORECASE,
)
_SRC = Path(lychgate.__file__).parent


def _is_len_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"


def secrets_compared_with_equality(root: Path, paths: list[Path]) -> list[str]:
    """``file:line: comparison`` (file relative to ``root``) for every ``==``/``!=`` with an
    operand that looks like a secret."""
    offenders = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(_is_len_call(o) or isinstance(o, ast.Constant) for o in operands):
                continue  # comparing lengths, or with a literal (no secret), leaks nothing
            text = " ".join(ast.unparse(o) for o in operands)
            if _SECRETISH.search(text):
                where = path.relative_to(root).as_posix()
                offenders.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return offenders


def test_no_secret_is_compared_with_equality_anywhere_in_tokens() -> None:
    """No ``==``/``!=`` on anything that looks like a code, hash, tag or signature."""
    package = Path(lychgate.tokens.__file__).parent
    assert secrets_compared_with_equality(package, sorted(package.glob("*.py"))) == []


def test_no_secret_is_compared_with_equality_in_authz_the_gateway_or_devicesig() -> None:
    """The same rule (SECURITY.md item 6) for authz (the internal bearer secret, binding
    secrets, one-time codes), the gateway (the sign-in state cookie, tokens) and device
    signatures."""
    paths = [
        *sorted((_SRC / "authz").rglob("*.py")),
        *sorted((_SRC / "gateway").rglob("*.py")),
        _SRC / "devicesig.py",
    ]
    assert len(paths) > 100  # the globs found the packages
    assert secrets_compared_with_equality(_SRC, paths) == []


def test_the_equality_scan_finds_what_it_is_meant_to_find(tmp_path: Path) -> None:
    """Not vacuous: a bearer check, a hash or a code compared with ``==`` is flagged; an HTTP
    status code, a length and an encoded path are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "ok = status_code != 429 or len(code) == 43 or raw == path.encode()\n"
        "bad = authorization == expected\n"
        "worse = secret_hash(value) != login.secret_hash\n"
        "also = code.encode() == stored\n"
        "state_ok = held[0] == state\n"
        "fine = phase == DONE or exit_code == 0 or checked == 'legacy_token'\n"
    )
    assert secrets_compared_with_equality(tmp_path, [sample]) == [
        "sample.py:2: authorization == expected",
        "sample.py:3: secret_hash(value) != login.secret_hash",
        "sample.py:4: code.encode() == stored",
        "sample.py:5: held[0] == state",
    ]
