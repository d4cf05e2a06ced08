"""Values written in a form an operator would reasonably use are read, or refused saying the
form expected: a public URL's port, a log level in capitals, networks as a JSON list."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lychgate.config import load_settings
from lychgate.errors import ConfigError


def error(data_dir: Path, env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir, env)
    return caught.value


@pytest.mark.parametrize("port", ["99999", "0", "", "65536"])
def test_a_public_url_port_out_of_range_is_refused_naming_it(data_dir: Path, port: str) -> None:
    # http://localhost:99999 passed: `user add` printed links to it, and init blamed plain HTTP.
    err = error(data_dir, {"LYCHGATE_PUBLIC_URL": f"http://localhost:{port}"})
    assert err.field == "public_url"
    assert f"has the port {port!r}: give a port from 1 to 65535, or none" in str(err)


def test_a_public_url_port_out_of_range_in_the_file_is_refused(data_dir: Path) -> None:
    (data_dir / "lychgate.toml").write_text('public_url = "https://[::1]:70000"\n')
    assert "has the port '70000'" in str(error(data_dir, {}))


@pytest.mark.parametrize("url", ["http://localhost:1", "https://gate.example:65535"])
def test_public_url_ports_in_range_are_kept(data_dir: Path, url: str) -> None:
    assert load_settings(data_dir, {"LYCHGATE_PUBLIC_URL": url}).public_url == url


@pytest.mark.parametrize("given", ["DEBUG", "Warning", "error"])
def test_the_log_level_is_read_in_any_case(data_dir: Path, given: str) -> None:
    settings = load_settings(data_dir, {"LYCHGATE_LOG_LEVEL": given})
    assert settings.log_level == given.lower()


def test_an_unknown_log_level_is_still_refused(data_dir: Path) -> None:
    assert error(data_dir, {"LYCHGATE_LOG_LEVEL": "LOUD"}).field == "log_level"


@pytest.mark.parametrize(
    "given", ['["10.0.0.0/8", "192.168.0.0/16"]', "10.0.0.0/8, 192.168.0.0/16"]
)
def test_trusted_proxies_as_a_json_list_or_comma_separated(data_dir: Path, given: str) -> None:
    settings = load_settings(data_dir, {"LYCHGATE_TRUSTED_PROXIES": given})
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.0.0/16"),
    )


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ('["10.0.0.0/8"', "is not a list of networks: write them comma-separated"),
        ('{"a": 1}', "is not an IP network"),
        ("10.0.0.0/8,foo", "'foo' is not an IP network: give networks comma-separated"),
        ("[1]", "1 is not an IP network"),  # ip_network(1) is the address 0.0.0.1
    ],
)
def test_a_bad_network_list_says_the_form_expected(data_dir: Path, given: str, words: str) -> None:
    err = error(data_dir, {"LYCHGATE_AUTHZ_TRUSTED_GATEWAYS": given})
    assert err.field == "authz_trusted_gateways"
    assert words in str(err)
    assert "such as 10.0.0.0/8,192.168.0.0/16 (or a JSON list)" in str(err)
