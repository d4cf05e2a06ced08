"""Server answers: validated, and made safe before a person reads them."""

from __future__ import annotations

import httpx
import pytest

from lychgate.device.wire import BadAnswer, LoginContext, check_choices, parse, printable


def answer(body: str) -> httpx.Response:
    return httpx.Response(200, content=body.encode())


CONTEXT = (
    '{"id": "l_1", "status": "pending", "browser": "Firefox", "ip": "203.0.113.7", "app": null,'
    ' "requested_at": "2030-01-02T03:04:05Z", "choices": %s, "something_new": 1}'
)


def test_a_login_context_parses_and_ignores_new_members() -> None:
    context = parse(LoginContext, answer(CONTEXT % "[17, 42, 88]"), what="sign-in")
    assert context.choices == (17, 42, 88)
    assert context.app is None
    check_choices(context)


@pytest.mark.parametrize(
    "choices", ["[17, 42]", "[17, 42, 88, 90]", "[17, 17, 88]", "[5, 42, 88]", "[17, 42, 100]"]
)
def test_choices_must_be_three_distinct_two_digit_numbers(choices: str) -> None:
    context = parse(LoginContext, answer(CONTEXT % choices), what="sign-in")
    with pytest.raises(BadAnswer):
        check_choices(context)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        CONTEXT.replace('"pending"', '"maybe"') % "[1, 2, 3]",
        CONTEXT.replace('"2030-01-02T03:04:05Z"', '"yesterday"') % "[1, 2, 3]",
        CONTEXT.replace('"2030-01-02T03:04:05Z"', '"2030-01-02T03:04:05"') % "[1, 2, 3]",
        CONTEXT % '"17,42,88"',
    ],
)
def test_malformed_answers(body: str) -> None:
    with pytest.raises(BadAnswer, match="unexpected answer to sign-in"):
        parse(LoginContext, answer(body), what="sign-in")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Firefox", "Firefox"),
        ("Firefox\nIP        10.0.0.1", "Firefox\ufffdIP        10.0.0.1"),  # a fake line
        ("\x1b[2J\x1b[Hcleared", "\ufffd[2J\ufffd[Hcleared"),  # terminal escapes
        ("evil\u202egnp.exe", "evil\ufffdgnp.exe"),  # bidi override
        ("zero\u200bwidth", "zero\ufffdwidth"),
        ("\x9b31m", "\ufffd31m"),  # C1 CSI
        (None, ""),
    ],
)
def test_printable(text: str | None, shown: str) -> None:
    assert printable(text) == shown


def test_printable_truncates() -> None:
    assert printable("x" * 500, 10) == "x" * 9 + "\u2026"
    assert printable("x" * 10, 10) == "x" * 10
