"""Links handed to the device: parsed strictly, and sign-in links only for the enrolled server.

SECURITY.md item 1 (redirect-style tricks) applied to QR codes: a phishing page can show any
link, so the origin is compared after strict parsing and everything odd is refused.
"""

from __future__ import annotations

import pytest

from lychgate.device.urls import Origin, parse_enrollment_url, parse_login_url, parse_origin
from lychgate.errors import ClientError

SERVER = "https://gate.example.test"
LOGIN = "/.lychgate/d/login/l_Abc-123_xyz"


@pytest.mark.parametrize(
    "url",
    [
        SERVER + LOGIN,
        "HTTPS://GATE.Example.TEST" + LOGIN,
        "https://gate.example.test:443" + LOGIN,
        "  " + SERVER + LOGIN + "\n",  # pasted with whitespace around it
    ],
)
def test_login_link_of_the_enrolled_server(url: str) -> None:
    assert parse_login_url(url, server=SERVER) == "l_Abc-123_xyz"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example" + LOGIN,
        "http://gate.example.test" + LOGIN,  # downgrade
        "https://gate.example.test:8443" + LOGIN,  # another port
        "https://gate.example.test.evil.example" + LOGIN,
        "https://evil.example.gate.example.test" + LOGIN,
        "https://gate.example.test@evil.example" + LOGIN,  # userinfo trick
        "https://evil.example@gate.example.test" + LOGIN,
        "https://evil.example\\@gate.example.test" + LOGIN,  # WHATWG vs urllib differential
        "https://gate.example.test\\" + LOGIN,
        "https://%67ate.example.test" + LOGIN,  # percent-encoded host
        "https://g\u0430te.example.test" + LOGIN,  # Cyrillic a: another (IDN) host
        "//gate.example.test" + LOGIN,
        "gate.example.test" + LOGIN,
        "javascript:alert(1)//gate.example.test" + LOGIN,
        "https:gate.example.test" + LOGIN,
        "https://gate.example.test:0" + LOGIN,
        "https://gate.example.test:99999" + LOGIN,
        "https://gate.example.test:\uff14\uff14\uff13" + LOGIN,  # full-width digits
    ],
)
def test_login_link_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_login_url(url, server=SERVER)
    assert caught.value.field == "url"


def test_the_refusal_names_both_origins() -> None:
    with pytest.raises(ClientError, match=r"evil\.example.*gate\.example\.test"):
        parse_login_url("https://evil.example" + LOGIN, server=SERVER)


@pytest.mark.parametrize(
    "path",
    [
        "/.lychgate/d/login/",
        "/.lychgate/d/login/abc/approve",
        "/.lychgate/d/login/abc?x=1",
        "/.lychgate/d/login/abc#frag",
        "/.lychgate/d/login/../login/abc",
        "/.lychgate/d/login/%2e%2e",
        "/.lychgate/d/login/a%2Fb",
        "/.lychgate/d/login/a b",
        "/.lychgate/d/login/a\tb",
        "/.lychgate/D/login/abc",
        "//.lychgate/d/login/abc",
        "/.lychgate/enroll/abc",
        "/.lychgate/d/login/" + "a" * 129,
        "",
    ],
)
def test_only_exact_login_paths(path: str) -> None:
    with pytest.raises(ClientError):
        parse_login_url(SERVER + path, server=SERVER)


def test_enrollment_link() -> None:
    link = parse_enrollment_url("https://gate.example.test/.lychgate/enroll/c0de_-XYZ")
    assert link.origin == Origin("https", "gate.example.test", 443)
    assert link.code.reveal() == "c0de_-XYZ"
    assert "c0de" not in repr(link)  # the code is a credential


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/.lychgate/enroll/abc",
        "http://app.localhost/.lychgate/enroll/abc",
        "http://127.0.0.1:8080/.lychgate/enroll/abc",
        "http://[::1]:8080/.lychgate/enroll/abc",
    ],
)
def test_plain_http_enrollment_only_on_loopback(url: str) -> None:
    assert parse_enrollment_url(url).code.reveal() == "abc"


@pytest.mark.parametrize(
    "url",
    [
        "http://gate.example.test/.lychgate/enroll/abc",  # the code would travel in the clear
        "http://localhost.evil.example/.lychgate/enroll/abc",
        "http://10.0.0.1/.lychgate/enroll/abc",
        "https://gate.example.test/.lychgate/enroll/",
        "https://gate.example.test/.lychgate/enroll/a/b",
        "https://gate.example.test/.lychgate/d/login/abc",
        "https://gate.example.test/.lychgate/enroll/abc?x",
        "ftp://gate.example.test/.lychgate/enroll/abc",
    ],
)
def test_bad_enrollment_links(url: str) -> None:
    with pytest.raises(ClientError):
        parse_enrollment_url(url)


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("https://gate.example.test", "https://gate.example.test"),
        ("https://gate.example.test:443/", "https://gate.example.test"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("HTTP://LOCALHOST.:80", "http://localhost"),
    ],
)
def test_origin_text(url: str, text: str) -> None:
    assert str(parse_origin(url)) == text


def test_an_origin_has_no_path() -> None:
    with pytest.raises(ClientError):
        parse_origin("https://gate.example.test/base")
