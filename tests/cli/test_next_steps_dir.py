"""The next steps that init, ca rotate and user add print work as printed.

After ``lychgate init --dir data-tls`` they said ``lychgate ca export > lychgate-ca.pem``,
which looked in the default directory and found no deployment there.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from cli.test_cli import lychgate

HTTPS = "https://localhost:18320"


def printed(out: str, start: str) -> list[str]:
    """The words of the first command in ``out`` that starts with ``start``, up to a
    redirection or the closing backquote."""
    at = out.index(start)
    line = out[at:].splitlines()[0].split("`")[0].split(" > ")[0]
    return shlex.split(line)


def test_init_elsewhere_names_its_directory(data_dir: Path) -> None:
    code, out = lychgate("init", "--dir", str(data_dir), "--public-url", HTTPS)
    assert code == 0, out
    assert f"devices: lychgate ca export --dir {data_dir} > lychgate-ca.pem" in out
    assert f"from `lychgate ca export --dir {data_dir} > lychgate-ca.pem` on this server" in out
    assert f"--upstream http://127.0.0.1:PORT --dir {data_dir}" in out
    export = printed(out, "lychgate ca export")
    code, pem = lychgate(*export[1:])
    assert code == 0, pem
    assert pem.startswith("-----BEGIN CERTIFICATE-----")


def test_ca_rotate_and_user_add_name_the_directory(data_dir: Path) -> None:
    assert lychgate("init", "--dir", str(data_dir), "--public-url", HTTPS)[0] == 0
    code, out = lychgate("ca", "rotate", "--yes", "--dir", str(data_dir))
    assert code == 0, out
    assert f"lychgate ca export --dir {data_dir} > lychgate-ca.pem" in out
    code, out = lychgate("user", "add", "Bob", "--dir", str(data_dir))
    assert code == 0, out
    assert f"`lychgate ca export --dir {data_dir} > lychgate-ca.pem`" in out


def test_in_the_default_directory_no_dir_is_printed(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": None, "LYCHGATE_DATA_DIR": None}
    code, out = lychgate("init", "--public-url", HTTPS, env=env)  # type: ignore[arg-type]
    assert code == 0, out
    assert (tmp_path / ".local" / "share" / "lychgate" / "lychgate.toml").exists()
    assert "devices: lychgate ca export > lychgate-ca.pem" in out
    assert "--dir" not in out
