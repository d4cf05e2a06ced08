"""Settings: defaults, layering, and failing at start-up with the key's name."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from lychgate.config import load_settings
from lychgate.config.load import CLIENT_ENV_NAMES
from lychgate.config.paths import default_data_dir
from lychgate.config.settings import Limits, parse_hostport
from lychgate.device.keyfile import KEY_ENV
from lychgate.domain import APP_HEADER_BYTES_RANGE, APP_HEADERS_RANGE
from lychgate.errors import ConfigError


def write_toml(data_dir: Path, text: str) -> None:
    (data_dir / "lychgate.toml").write_text(text)


def test_defaults_work_on_an_empty_directory(data_dir: Path) -> None:
    s = load_settings(data_dir, {})
    assert s.data_dir == data_dir.resolve()
    assert s.public_url == "http://localhost:8080"
    assert s.routing == "single-host"
    assert s.trusted_proxies == ()
    assert s.authz_trusted_gateways == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert s.effective_database_url.reveal() == f"sqlite:///{data_dir.resolve() / 'lychgate.db'}"
    assert s.effective_authz_listen.startswith("unix:")


def test_settings_are_frozen(data_dir: Path) -> None:
    s = load_settings(data_dir, {})
    with pytest.raises(ValueError, match="frozen"):
        s.public_url = "http://evil.example"  # type: ignore[misc]


def test_env_overrides_file_and_flags_override_env(data_dir: Path) -> None:
    write_toml(data_dir, 'public_url = "http://a.localhost:1"\nsession_ttl = 7200\n')
    env = {"LYCHGATE_PUBLIC_URL": "http://b.localhost:2"}
    s = load_settings(data_dir, env)
    assert s.public_url == "http://b.localhost:2"
    assert s.session_ttl == 7200
    s = load_settings(data_dir, env, public_url="http://c.localhost:3")
    assert s.public_url == "http://c.localhost:3"


def test_nested_limits_from_file_and_env(data_dir: Path) -> None:
    write_toml(data_dir, "[limits]\nmax_headers = 50\n")
    s = load_settings(data_dir, {"LYCHGATE_LIMITS__HEADER_TIMEOUT": "2.5"})
    assert s.limits.max_headers == 50
    assert s.limits.header_timeout == 2.5


def test_unknown_key_in_file_names_the_key(data_dir: Path) -> None:
    write_toml(data_dir, 'pubic_url = "http://localhost"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {})
    assert err.value.field == "pubic_url"
    assert "lychgate.toml" in str(err.value)


def test_unknown_nested_key_names_the_key(data_dir: Path) -> None:
    write_toml(data_dir, "[limits]\nmax_hedaers = 5\n")
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {})
    assert err.value.field == "limits.max_hedaers"


def test_unknown_env_variable_names_the_variable(data_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {"LYCHGATE_PUBLICURL": "x"})
    assert err.value.field == "LYCHGATE_PUBLICURL"


def test_test_harness_variables_are_not_settings(data_dir: Path) -> None:
    load_settings(data_dir, {"LYCHGATE_TEST_PG_URL": "postgresql://x"})


def test_the_device_clis_variables_are_not_refused(data_dir: Path) -> None:
    # One shell runs the server commands and the device; `lychgate device --help` documents
    # LYCHGATE_DEVICE_KEY, which used to stop every server command.
    assert KEY_ENV in CLIENT_ENV_NAMES
    load_settings(data_dir, {KEY_ENV: "/tmp/k.json", "lychgate_device_key": "/tmp/k.json"})
    with pytest.raises(ConfigError) as err:  # a near miss is still a typo
        load_settings(data_dir, {"LYCHGATE_DEVICE_KEYS": "/tmp/k.json"})
    assert err.value.field == "LYCHGATE_DEVICE_KEYS"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("public_url", '"ftp://localhost"'),
        ("public_url", '"https://example.com/path"'),
        ("public_url", '"https://user@example.com"'),
        ("routing", '"wildcards"'),
        ("session_ttl", "-1"),
        ("workers", "0"),
        ("listen", '"8080"'),
        ("trusted_proxies", '["not-an-ip"]'),
        ("authz_trusted_gateways", '["not-an-ip"]'),
        ("authz_trusted_gateways", '["10.0.0.0/33"]'),
        ("authz_listen", '"https://10.0.0.1:9000"'),
        ("authz_listen", '"unix:relative.sock"'),
        ("authz_listen", '"9000"'),
    ],
)
def test_bad_values_fail_with_the_key(data_dir: Path, key: str, value: str) -> None:
    write_toml(data_dir, f"{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {})
    assert err.value.field is not None
    assert err.value.field.split(".")[0] == key


def test_bad_env_value_says_it_came_from_the_environment(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="LYCHGATE_WORKERS"):
        load_settings(data_dir, {"LYCHGATE_WORKERS": "many"})


def test_invalid_toml_is_a_config_error(data_dir: Path) -> None:
    write_toml(data_dir, "public_url = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(data_dir, {})


def test_tls_cert_needs_key(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="together"):
        load_settings(data_dir, {}, tls_cert=data_dir / "c.pem")


def test_app_token_cannot_outlive_session(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="app_token_ttl"):
        load_settings(data_dir, {}, session_ttl=60, app_token_ttl=120)


def test_database_url_never_prints(data_dir: Path) -> None:
    url = "postgresql://lychgate:hunter2@db/lychgate"
    s = load_settings(data_dir, {"LYCHGATE_DATABASE_URL": url})
    assert s.effective_database_url.reveal() == url
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "hunter2" not in s.model_dump_json()


def test_trusted_proxies_from_env_list(data_dir: Path) -> None:
    s = load_settings(data_dir, {"LYCHGATE_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert s.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_authz_trusted_gateways_from_file_and_env(data_dir: Path) -> None:
    write_toml(data_dir, 'authz_trusted_gateways = ["10.1.0.0/16", "fd00::1"]\n')
    s = load_settings(data_dir, {})
    assert s.authz_trusted_gateways == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("fd00::1/128"),
    )
    s = load_settings(data_dir, {"LYCHGATE_AUTHZ_TRUSTED_GATEWAYS": "10.2.0.0/16"})
    assert s.authz_trusted_gateways == (ipaddress.ip_network("10.2.0.0/16"),)
    none = load_settings(data_dir, {"LYCHGATE_AUTHZ_TRUSTED_GATEWAYS": ""})
    assert none.authz_trusted_gateways == ()  # no TCP peer is a gateway


def test_public_url_is_normalized(data_dir: Path) -> None:
    s = load_settings(data_dir, {}, public_url="HTTPS://Auth.Example.COM/")
    assert s.public_url == "https://auth.example.com"
    assert s.public_host == "auth.example.com"
    assert s.app_domain == "example.com"
    assert s.is_https


def test_default_data_dir_order(tmp_path: Path) -> None:
    assert default_data_dir({"LYCHGATE_DATA_DIR": "/srv/lg"}) == Path("/srv/lg")
    assert default_data_dir({"XDG_DATA_HOME": "/x"}) == Path("/x/lychgate")
    assert default_data_dir({"HOME": str(tmp_path)}) == tmp_path / ".local/share/lychgate"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:8080", ("::1", 8080)), (":0", None)],
)
def test_parse_hostport(value: str, expected: tuple[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_hostport(value)
    else:
        assert parse_hostport(value) == expected


@pytest.mark.parametrize(
    ("name", "bounds"),
    [("max_header_bytes", APP_HEADER_BYTES_RANGE), ("max_headers", APP_HEADERS_RANGE)],
)
def test_an_apps_header_limits_have_the_listeners_bounds(
    name: str, bounds: tuple[int, int]
) -> None:
    # An app's own limit replaces the listener's: it takes exactly the values Limits takes.
    low, high = bounds
    assert getattr(Limits(**{name: low}), name) == low
    assert getattr(Limits(**{name: high}), name) == high
    for outside in (low - 1, high + 1):
        with pytest.raises(ValidationError):
            Limits(**{name: outside})


# Every number has an upper bound (config.settings): past it, a value either switched a limit
# off without a word (header_timeout = inf: no slowloris bound) or crashed far from the config
# (an integer SQLite cannot store, a date past the year 9999).
LIMIT_BOUNDS = [
    ("max_body_bytes", 2**50),
    ("header_timeout", 300.0),
    ("idle_timeout", 86400.0),
    ("tunnel_idle_timeout", 7 * 86400.0),
    ("max_connections_per_client", 1024 * 1024),
    ("upstream_connect_timeout", 3600.0),
    ("upstream_read_timeout", 3600.0),
]


@pytest.mark.parametrize(("name", "most"), LIMIT_BOUNDS)
def test_every_limit_has_a_finite_upper_bound(name: str, most: float) -> None:
    assert getattr(Limits(**{name: most}), name) == most
    over: list[object] = [most + 1, 10**29]
    if isinstance(most, float):
        over += [float("inf"), float("nan"), 1e300]
    for value in over:
        with pytest.raises(ValidationError):
            Limits(**{name: value})


def test_the_listed_bounds_cover_every_limit() -> None:
    bounded = {"max_header_bytes", "max_headers", *(name for name, _ in LIMIT_BOUNDS)}
    assert bounded == set(Limits.model_fields)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("header_timeout = inf", "limits.header_timeout"),
        ("idle_timeout = nan", "limits.idle_timeout"),
        ("upstream_read_timeout = inf", "limits.upstream_read_timeout"),
        ("upstream_connect_timeout = 1e300", "limits.upstream_connect_timeout"),
        ("max_body_bytes = 100000000000000000000000000000", "limits.max_body_bytes"),
    ],
)
def test_unbounded_limits_in_the_file_are_refused(data_dir: Path, line: str, key: str) -> None:
    write_toml(data_dir, f"[limits]\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {})
    assert err.value.field == key
    assert "lychgate.toml" in str(err.value)


@pytest.mark.parametrize("name", ["session_ttl", "session_idle_ttl", "app_token_ttl"])
def test_lifetimes_are_at_most_400_days(data_dir: Path, name: str) -> None:
    # 10**13 s was accepted; `keys rotate` and `token mint` then crashed adding it to now.
    longest = 400 * 24 * 3600
    most = load_settings(data_dir, {}, **{"session_ttl": longest, name: longest})
    assert getattr(most, name) == longest
    for value in (longest + 1, 10_000_000_000_000):
        with pytest.raises(ConfigError) as err:
            load_settings(data_dir, {f"LYCHGATE_{name.upper()}": str(value)})
        assert err.value.field == name
        assert "less than or equal to 34560000" in str(err.value)


@pytest.mark.parametrize(
    "name", ["listen", "metrics_listen", "http_redirect_listen", "authz_listen"]
)
def test_port_0_is_refused_where_others_must_find_the_listener(data_dir: Path, name: str) -> None:
    # Port 0 bound any free port: nothing (a browser, a scraper, a gateway) could find it.
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {}, **{name: "127.0.0.1:0"})
    assert err.value.field == name
    assert "port 0 (any free port)" in str(err.value)
    assert load_settings(data_dir, {}, **{name: "127.0.0.1:1"}) is not None


def test_parse_hostport_still_takes_port_0_for_tests_and_tools() -> None:
    # Low-level callers (start_server(port=0), prepare(listen=...)) ask the OS for a port.
    assert parse_hostport("127.0.0.1:0") == ("127.0.0.1", 0)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("::1", "an IPv6 address needs brackets, as in [::1]:8080"),
        ("::8443", "an IPv6 address needs brackets"),
        ("http://127.0.0.1:8080", "expected HOST:PORT, not a URL"),
    ],
)
def test_a_listen_address_written_as_a_url_or_bare_ipv6_is_refused_saying_so(
    data_dir: Path, value: str, said: str
) -> None:
    # "::1" read as host ":" and port 1, and failed at bind as "cannot listen on [:]:1".
    for name in ("listen", "metrics_listen", "http_redirect_listen"):
        with pytest.raises(ConfigError) as err:
            load_settings(data_dir, {}, **{name: value})
        assert err.value.field == name
        assert said in str(err.value)
    assert load_settings(data_dir, {}, listen="[::1]:8080").listen == "[::1]:8080"


@pytest.mark.parametrize("name", ["tls_cert", "tls_key"])
def test_an_empty_tls_path_is_refused_not_read_as_this_directory(data_dir: Path, name: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {f"LYCHGATE_{name.upper()}": ""})
    assert err.value.field == name
    assert "is empty" in str(err.value)


def test_own_tls_files_need_an_https_public_url(data_dir: Path) -> None:
    # The listener spoke TLS alone while every link said http://: each browser got "plain
    # HTTP sent to the HTTPS port", and the start said nothing.
    files = {"tls_cert": Path("/etc/lychgate/cert.pem"), "tls_key": Path("/etc/lychgate/k.pem")}
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {}, public_url="http://localhost:8080", **files)
    assert "make public_url https://" in str(err.value)
    assert load_settings(data_dir, {}, public_url="https://gate.example", **files).is_https


@pytest.mark.parametrize("name", ["trusted_proxies", "authz_trusted_gateways"])
def test_a_trusted_network_with_host_bits_is_refused_not_widened(data_dir: Path, name: str) -> None:
    # "10.0.0.1/8" loaded as 10.0.0.0/8: a one-host entry silently trusted a whole /8.
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {f"LYCHGATE_{name.upper()}": "10.0.0.1/8"})
    assert err.value.field == name
    assert "write 10.0.0.0/8 for the network, or 10.0.0.1/32 for the one address" in str(err.value)
    kept = load_settings(data_dir, {f"LYCHGATE_{name.upper()}": "10.0.0.0/8,192.0.2.7"})
    assert [str(n) for n in getattr(kept, name)] == ["10.0.0.0/8", "192.0.2.7/32"]


def test_a_wrong_type_says_what_to_write(data_dir: Path) -> None:
    # Pydantic's words said only what was wrong: "Input should be a valid boolean".
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {"LYCHGATE_PROXY_PROTOCOL": "maybe"})
    assert str(err.value).endswith(
        "write true or false (in the environment also 1/0, yes/no, on/off)"
    )
    (data_dir / "lychgate.toml").write_text("listen = 8080\n")
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir, {})
    assert str(err.value).endswith(
        "Input should be a valid string: write it as a string, in quotes"
    )
