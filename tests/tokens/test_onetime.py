"""One-time codes and links: entropy, hashing, and every way a redemption is refused."""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

import lychgate.tokens
from fixtures.keys import KEY_NOW
from lychgate.domain import OneTimeCode
from lychgate.errors import TokenError, UsageError
from lychgate.tokens import (
    Purpose,
    Reason,
    check_redeemable,
    code_hash,
    make_one_time,
    new_code,
    read_payload,
    redeem,
)
from lychgate.tokens import onetime as onetime_module

from .helpers import expect

TTL = timedelta(seconds=60)


def _made() -> tuple[str, OneTimeCode]:
    return make_one_time(Purpose.HANDOFF, {"sid": "sess-1", "app": "wiki"}, KEY_NOW, TTL)


def _refused(
    record: OneTimeCode, code: str, *, purpose: str = Purpose.HANDOFF, later: int = 0
) -> pytest.ExceptionInfo[TokenError]:
    with pytest.raises(TokenError) as info:
        check_redeemable(record, code, purpose, KEY_NOW + timedelta(seconds=later))
    return info


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


def test_redeem_marks_it_used() -> None:
    code, record = _made()
    check_redeemable(record, code, Purpose.HANDOFF, KEY_NOW)
    used = redeem(record, code, Purpose.HANDOFF, KEY_NOW + timedelta(seconds=5))
    assert used.used_at == KEY_NOW + timedelta(seconds=5)
    assert replace(used, used_at=None) == record


def test_replay_is_refused() -> None:
    code, record = _made()
    used = redeem(record, code, Purpose.HANDOFF, KEY_NOW)
    expect(Reason.REPLAYED, _refused(used, code))
    with pytest.raises(TokenError):
        redeem(used, code, Purpose.HANDOFF, KEY_NOW)


def test_replayed_link_stays_dead_even_later() -> None:
    code, record = make_one_time(Purpose.ENROLL, {"user": "u1"}, KEY_NOW, timedelta(hours=24))
    used = redeem(record, code, Purpose.ENROLL, KEY_NOW + timedelta(hours=1))
    expect(Reason.REPLAYED, _refused(used, code, purpose=Purpose.ENROLL, later=7200))


def test_expiry_edges() -> None:
    code, record = _made()
    check_redeemable(record, code, Purpose.HANDOFF, KEY_NOW + TTL - timedelta(microseconds=1))
    expect(Reason.EXPIRED, _refused(record, code, later=60))
    expect(Reason.EXPIRED, _refused(record, code, later=61))


def test_wrong_purpose_is_refused() -> None:
    code, record = _made()
    expect(Reason.WRONG_PURPOSE, _refused(record, code, purpose=Purpose.ENROLL))
    expect(Reason.WRONG_PURPOSE, _refused(record, code, purpose=Purpose.ADMIN_SETUP))
    expect(Reason.WRONG_PURPOSE, _refused(record, code, purpose="HANDOFF"))


def test_wrong_code_is_refused_before_anything_about_the_record_shows() -> None:
    code, record = _made()
    used_and_expired = replace(record, used_at=KEY_NOW)
    others = [new_code(), code[:-1], code + "A", code[:-1] + ("B" if code[-1] != "B" else "C")]
    for other in others:
        expect(Reason.WRONG_CODE, _refused(record, other))
        expect(Reason.WRONG_CODE, _refused(used_and_expired, other, purpose="x", later=999))


@pytest.mark.parametrize("code", ["", None, b"bytes", 42])
def test_non_codes_are_malformed(code: object) -> None:
    _, record = _made()
    expect(Reason.MALFORMED, _refused(record, code))  # type: ignore[arg-type]


def test_huge_code_is_refused_unhashed() -> None:
    _, record = _made()
    expect(Reason.TOO_LARGE, _refused(record, "A" * 100_000))


def test_comparison_goes_through_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behavioural half of the constant-time check: the hashes meet only in compare_digest."""
    seen: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    code, record = _made()
    check_redeemable(record, code, Purpose.HANDOFF, KEY_NOW)
    wrong = new_code()
    with pytest.raises(TokenError):
        check_redeemable(record, wrong, Purpose.HANDOFF, KEY_NOW)
    assert seen == [(code_hash(code), record.code_hash), (code_hash(wrong), record.code_hash)]


def test_check_redeemable_calls_compare_digest_in_its_source() -> None:
    """Code-level half: the call is there, spelled through the hmac module."""
    tree = ast.parse(inspect.getsource(onetime_module.check_redeemable))
    calls = [
        node.func
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    assert any(
        isinstance(f.value, ast.Name) and f.value.id == "hmac" and f.attr == "compare_digest"
        for f in calls
    )


#: Names that look like a code, hash, tag, signature or bearer secret. Not a "code": an HTTP
#: ``status_code`` (authz compares it with 429) and ``encode``/``decode`` (authz compares the
#: raw path with the encoded path; ``code.encode()`` still matches on ``code``). ``token``,
#: ``authorization`` and ``bearer`` name the internal API's secret and its header.
_SECRETISH = re.compile(
    r"hash|digest|(?<!status_)(?<!en)(?<!de)code|secret|signature|\btag\b|mac\b"
    r"|token|authorization|bearer",
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
            if any(_is_len_call(o) for o in operands):
                continue  # comparing lengths leaks nothing secret
            text = " ".join(ast.unparse(o) for o in operands)
            if _SECRETISH.search(text):
                where = path.relative_to(root).as_posix()
                offenders.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return offenders


def test_no_secret_is_compared_with_equality_anywhere_in_tokens() -> None:
    """No ``==``/``!=`` on anything that looks like a code, hash, tag or signature."""
    package = Path(lychgate.tokens.__file__).parent
    assert secrets_compared_with_equality(package, sorted(package.glob("*.py"))) == []


def test_no_secret_is_compared_with_equality_in_authz_or_devicesig() -> None:
    """The same rule (SECURITY.md item 6) for authz (the internal bearer secret, binding
    secrets, one-time codes) and for device signatures."""
    paths = [*sorted((_SRC / "authz").rglob("*.py")), _SRC / "devicesig.py"]
    assert len(paths) > 20  # the glob found the package
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
    )
    assert secrets_compared_with_equality(tmp_path, [sample]) == [
        "sample.py:2: authorization == expected",
        "sample.py:3: secret_hash(value) != login.secret_hash",
        "sample.py:4: code.encode() == stored",
    ]
