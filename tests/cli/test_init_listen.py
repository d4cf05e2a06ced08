"""``lychgate init --listen / --authz-listen``: where the gateway and authz listen, written
into the new lychgate.toml. A cluster node needed authz_listen set by hand, and a public URL
on this machine at another port needed listen so (``init --public-url
https://localhost:8443`` served on 8080, out of the browsers' reach)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cli.test_cli import lychgate


def _config(data_dir: Path) -> dict[str, object]:
    return tomllib.loads((data_dir / "lychgate.toml").read_text())


def test_both_are_written_and_kept(data_dir: Path) -> None:
    d = str(data_dir)
    args = ["--public-url", "https://localhost:18443", "--listen", "127.0.0.1:18443"]
    code, out = lychgate("init", "--dir", d, *args, "--authz-listen", "10.0.0.5:8081")
    assert code == 0, out
    config = _config(data_dir)
    assert (config["listen"], config["authz_listen"]) == ("127.0.0.1:18443", "10.0.0.5:8081")
    # Again with the same values, or none: nothing to change.
    assert lychgate("init", "--dir", d, "--listen", "127.0.0.1:18443")[0] == 0
    assert lychgate("init", "--dir", d)[0] == 0


def test_another_value_on_an_existing_deployment_is_refused(data_dir: Path) -> None:
    d = str(data_dir)
    assert lychgate("init", "--dir", d, "--authz-listen", "10.0.0.5:8081")[0] == 0
    code, out = lychgate("init", "--dir", d, "--authz-listen", "10.0.0.6:8081")
    assert code != 0
    assert "this deployment's authz_listen is '10.0.0.5:8081'" in " ".join(out.split())
    code, out = lychgate("init", "--dir", d, "--listen", "0.0.0.0:9000")
    assert code != 0
    assert "listen" in out


def test_without_them_the_defaults_stay_comments(data_dir: Path) -> None:
    assert lychgate("init", "--dir", str(data_dir))[0] == 0
    config = _config(data_dir)
    assert "listen" not in config
    assert "authz_listen" not in config


def test_a_bad_address_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    for option, value in (("--listen", "nonsense"), ("--authz-listen", "tcp://x")):
        target = tmp_path / option.strip("-")
        code, out = lychgate("init", "--dir", str(target), option, value)
        assert code != 0
        assert "expected HOST:PORT" in out
        assert not target.exists()
