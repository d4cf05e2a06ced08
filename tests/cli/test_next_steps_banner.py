"""``serve --demo``'s banner gives the admin's enroll command as init does.

On an https deployment with the internal CA it printed the command without ``--ca``, and the
device refused the server's certificate (CERTIFICATE_VERIFY_FAILED); init printed it with
``--ca lychgate-ca.pem`` and where that file comes from.
"""

from __future__ import annotations

from pathlib import Path

from cli.test_cli import lychgate
from lychgate.config import load_settings
from lychgate.demo.apps import Registration
from lychgate.demo.banner import next_steps
from lychgate.demo.bootstrap import DemoStart

LINK = "https://localhost:18320/.lychgate/enroll/abc123"


def test_on_the_internal_ca_the_banner_names_the_ca(data_dir: Path) -> None:
    settings = load_settings(data_dir, {}, public_url="https://localhost:18320")
    text = next_steps(settings, DemoStart(Registration((), ()), LINK), {}, qr=None)
    assert (
        f'   lychgate device enroll {LINK} --user-name "Your Name" --ca lychgate-ca.pem\n' in text
    )
    assert f"from `lychgate ca export --dir {data_dir} > lychgate-ca.pem` on this server" in text


def test_the_banner_prints_what_init_prints(data_dir: Path) -> None:
    code, out = lychgate("init", "--dir", str(data_dir), "--public-url", "https://localhost:18320")
    assert code == 0, out
    settings = load_settings(data_dir, {})
    link = next(word for word in out.split() if "/.lychgate/enroll/" in word)
    text = next_steps(settings, DemoStart(Registration((), ()), link), {}, qr=None)
    told = out[out.index("lychgate device enroll") :].splitlines()[:3]
    assert all(f"   {line.strip()}" in text for line in told), (told, text)


def test_the_token_mint_step_names_the_directory(data_dir: Path) -> None:
    settings = load_settings(data_dir, {})
    text = next_steps(settings, DemoStart(Registration((), ()), None), {}, qr=None)
    assert f"COOKIE=$(lychgate token mint --app whoami --user EMAIL-OR-ID --dir {data_dir})" in text
