"""The next steps ``serve --demo`` prints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fixtures.store import make_app
from lychgate.config import Settings, load_settings
from lychgate.demo.apps import Registration
from lychgate.demo.banner import app_url, listen_mismatch, next_steps
from lychgate.demo.bootstrap import DemoStart
from lychgate.deployment.enroll import terminal_qr
from lychgate.ids import AppSlug

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LINK = "http://localhost:8080/.lychgate/enroll/abc123"


def settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings(data_dir, {}, **overrides)


def fake_qr(url: str) -> str:
    return f"[QR of {url}]\n"


def start(link: str | None) -> DemoStart:
    added = (make_app(slug=AppSlug("whoami")), make_app(slug=AppSlug("chat")))
    return DemoStart(Registration(added, ()), link)


def test_without_an_admin_the_banner_shows_the_setup_link(data_dir: Path) -> None:
    text = next_steps(settings(data_dir), start(LINK), {}, qr=fake_qr)
    assert "whoami and chat behind http://localhost:8080" in text
    assert "registered: whoami, chat" in text
    assert f"[QR of {LINK}]" in text
    assert f'lychgate device enroll {LINK} --user-name "Your Name"' in text
    assert "lychgate device approve '<login url>'" in text
    assert f"token mint --app whoami --user EMAIL-OR-ID --dir {data_dir})" in text
    assert 'curl -H "Cookie: $COOKIE" "http://localhost:8080/?format=json"' in text
    assert "note:" not in text


def test_with_an_admin_there_is_no_setup_step(data_dir: Path) -> None:
    text = next_steps(settings(data_dir), start(None), {}, qr=fake_qr)
    assert "No admin yet" not in text
    assert "[QR" not in text
    assert "1. Open http://localhost:8080 in a browser" in text


def test_the_real_qr_is_drawn_in_the_banner(data_dir: Path) -> None:
    text = next_steps(settings(data_dir), start(LINK), {})
    assert terminal_qr(LINK).rstrip("\n") in text


def test_subdomain_apps_have_their_own_urls(data_dir: Path) -> None:
    s = settings(data_dir, public_url="https://auth.example.com", routing="subdomains")
    assert app_url(s, "whoami") == "https://whoami.example.com"
    s = settings(data_dir, public_url="http://auth.localhost:8080", routing="subdomains")
    assert app_url(s, "chat") == "http://chat.localhost:8080"
    assert app_url(settings(data_dir), "chat") == "http://localhost:8080"


def test_a_listener_on_another_port_is_pointed_out(data_dir: Path) -> None:
    assert listen_mismatch(settings(data_dir)) is None
    warning = listen_mismatch(settings(data_dir, listen="127.0.0.1:18080"))
    assert warning is not None
    assert "listens on 127.0.0.1:18080 but public_url is http://localhost:8080" in warning
    https = settings(data_dir, public_url="https://lychgate.localhost", listen="0.0.0.0:443")
    assert listen_mismatch(https) is None
