"""The lychgate.toml that ``init`` writes shows the settings operators reach for as commented
examples, and each one, uncommented, is a valid value (a template that parsed only with its
comments in place would fail the first start after an edit)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lychgate.config import Limits, Settings, load_settings
from lychgate.deployment.config_file import config_template
from lychgate.errors import ConfigError

EXAMPLE = re.compile(r"# (?P<key>[a-z_]+) = ")
TABLE = re.compile(r"# \[(?P<table>[a-z_]+)\]$")
# Settings that are only valid together: uncommented as one.
TOGETHER = {"tls_cert": "tls_key", "tls_key": "tls_cert"}
# Settings valid only with an https public_url: on a plain http one they are refused, saying so.
NEEDS_HTTPS = {"tls_cert", "tls_key"}

DEFAULT = config_template(public_url=None, routing=None, domain=None)
ALL_GIVEN = config_template(
    public_url="https://gate.example",
    routing="subdomains",
    domain="apps.example",
    database_url="postgresql://lychgate@db/lychgate",
    listen="0.0.0.0:443",
    authz_listen="127.0.0.1:8081",
)


def uncommented(text: str, keys: set[str]) -> str:
    """``text`` with the example lines of ``keys`` uncommented, and their table's header."""
    lines = text.split("\n")
    table_header: int | None = None
    for i, line in enumerate(lines):
        if TABLE.match(line):
            table_header = i
        found = EXAMPLE.match(line)
        if found and found["key"] in keys:
            lines[i] = line.removeprefix("# ")
            if table_header is not None:
                lines[table_header] = lines[table_header].removeprefix("# ")
    return "\n".join(lines)


def example_keys(text: str) -> list[str]:
    return [found["key"] for line in text.split("\n") if (found := EXAMPLE.match(line))]


def load(data_dir: Path, text: str) -> Settings:
    (data_dir / "lychgate.toml").write_text(text)
    return load_settings(data_dir, {})


def test_the_settings_operators_need_have_examples() -> None:
    wanted = {
        "http_redirect_listen",
        "tls_cert",
        "tls_key",
        "hsts_max_age",
        "log_level",
        "login_request_ttl",
        "access_log",
        "metrics_listen",
        "workers",
        "trusted_proxies",
    }
    assert wanted <= set(example_keys(DEFAULT))
    assert wanted <= set(example_keys(ALL_GIVEN))


@pytest.mark.parametrize("text", [DEFAULT, ALL_GIVEN], ids=["default", "all-given"])
def test_each_example_uncommented_alone_is_valid(data_dir: Path, text: str) -> None:
    for key in example_keys(text):
        keys = {key, TOGETHER[key]} if key in TOGETHER else {key}
        edited = uncommented(text, keys)
        assert edited != text
        if key in NEEDS_HTTPS and 'public_url = "https://' not in text:
            with pytest.raises(ConfigError, match="make public_url https://"):
                load(data_dir, edited)
            continue
        load(data_dir, edited)  # raises ConfigError, naming the key, if not


@pytest.mark.parametrize("text", [DEFAULT, ALL_GIVEN], ids=["default", "all-given"])
def test_every_example_uncommented_at_once_parses_and_is_valid(data_dir: Path, text: str) -> None:
    keys = set(example_keys(text))
    if 'public_url = "https://' not in text:
        keys -= NEEDS_HTTPS  # refused on plain http (above)
    everything = uncommented(text, keys)
    left = [found["key"] for line in everything.split("\n") if (found := EXAMPLE.match(line))]
    assert set(left) <= NEEDS_HTTPS
    assert not any(TABLE.match(line) for line in everything.split("\n"))
    load(data_dir, everything)


def has_default(key: str) -> bool:
    """Whether the setting (``limits.header_timeout``) has a default value, not None."""
    table, _, name = key.rpartition(".")
    fields = Limits.model_fields if table else Settings.model_fields
    return fields[name].default is not None


def test_an_example_of_a_setting_with_a_default_shows_that_default(data_dir: Path) -> None:
    # The template says a commented line is the default: an example that differs would change
    # the deployment when uncommented to edit something else nearby.
    base = load(data_dir, "").model_dump()
    table = ""
    for line in DEFAULT.split("\n"):
        if header := TABLE.match(line):
            table = header["table"]
        found = EXAMPLE.match(line)
        if found is None or not has_default(f"{table}.{found['key']}".lstrip(".")):
            continue
        given = load(data_dir, f"[{table}]\n" * bool(table) + line.removeprefix("# "))
        assert given.model_dump() == base, line
