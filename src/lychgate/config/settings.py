"""The settings model.

Every setting has a sane default so that ``lychgate init && lychgate serve`` works on a laptop:
SQLite in the data directory, single-host routing on ``http://localhost:8080``, no trusted
proxies. A value that does not validate, or a key we do not know, fails at start-up and names
the key (see :mod:`lychgate.config.load`).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lychgate.secret import Secret

RoutingMode = Literal["single-host", "subdomains"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Upper bounds. Every number a setting holds has one: an unbounded value is either a limit
# switched off without saying so (``header_timeout = inf`` ends the slowloris bound) or a
# crash far from the config (a date past the year 9999, an integer SQLite cannot store).

#: The longest a session or token may last: 400 days, the longest cookie lifetime browsers
#: accept (RFC 6265bis caps Expires and Max-Age at its cookie-age-limit, 400 days), so a
#: longer session could not be kept by its cookie anyway; and ``now`` plus it is always a
#: date Python can hold (``token mint`` and ``keys rotate`` crashed on a larger one).
MAX_TTL: Final = 400 * 24 * 3600
#: The largest request body, the listener's and an app's (:mod:`lychgate.deployment.apps`):
#: 1 PiB is far beyond any upload, and well inside a 64-bit integer (and SQLite's).
MAX_BODY_BYTES: Final = 2**50
#: Waiting for an upstream to connect, or between its reads: the listener's default and an
#: app's own (``--connect-timeout``, ``--read-timeout``) share this bound.
MAX_UPSTREAM_TIMEOUT: Final = 3600.0
#: A keep-alive connection's wait for its next request, the listener's and an app's.
MAX_IDLE_TIMEOUT: Final = 86400.0
#: The whole request head (and the TLS handshake) must arrive within this: the slowloris bound.
MAX_HEADER_TIMEOUT: Final = 300.0
#: A WebSocket silent both ways this long is closed.
MAX_TUNNEL_IDLE_TIMEOUT: Final = 7 * 86400.0
#: Connections per client and worker: Linux's default ``nr_open``, the most file descriptors
#: one process can ever have, so a larger cap could never be reached.
MAX_CONNECTIONS_PER_CLIENT: Final = 1024 * 1024
# Two years: what browsers' preload lists ask for, and more than any site needs.
MAX_HSTS_MAX_AGE: Final = 2 * 365 * 86400

#: The error type of a check across settings (``app_token_ttl`` against ``session_ttl``): its
#: context's ``settings`` maps each key compared to its value, for the loader to say where
#: each came from (:mod:`lychgate.config.load`).
SETTINGS_CONFLICT: Final = "settings_conflict"


def _refuse_bool(value: Any) -> Any:
    """A number is no ``true``: pydantic reads true and false as 1 and 0, so ``session_ttl =
    true`` was a one-second session. (A number written as text, as every environment variable
    is, stays the type's own business.)"""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {str(value).lower()}")
    return value


def _refuse_number(value: Any) -> Any:
    """A switch is true or false, or an environment variable's text for one (``"true"``,
    ``"1"``...): pydantic read the number 1 as true, and any other as an error about booleans."""
    if isinstance(value, bool | str):
        return value
    raise ValueError(f"expected true or false, not {value!r}")


# The types of the number and switch settings: each refuses the other's values, from any source.
Int = Annotated[int, BeforeValidator(_refuse_bool)]
Float = Annotated[float, BeforeValidator(_refuse_bool)]
Bool = Annotated[bool, BeforeValidator(_refuse_number)]


class Limits(BaseModel):
    """Per-listener limits; apps may lower or raise ``max_body_bytes`` and the timeouts."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_header_bytes: Int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_headers: Int = Field(default=100, ge=8, le=1000)
    max_body_bytes: Int = Field(default=1024**3, ge=0, le=MAX_BODY_BYTES)
    # slowloris: the whole head must arrive
    header_timeout: Float = Field(default=10.0, gt=0, le=MAX_HEADER_TIMEOUT)
    # keep-alive between requests
    idle_timeout: Float = Field(default=60.0, gt=0, le=MAX_IDLE_TIMEOUT)
    # a silent WebSocket is closed
    tunnel_idle_timeout: Float = Field(default=3600.0, gt=0, le=MAX_TUNNEL_IDLE_TIMEOUT)
    # per worker; 0: no cap
    max_connections_per_client: Int = Field(default=1024, ge=0, le=MAX_CONNECTIONS_PER_CLIENT)
    upstream_connect_timeout: Float = Field(default=5.0, gt=0, le=MAX_UPSTREAM_TIMEOUT)
    upstream_read_timeout: Float = Field(default=60.0, gt=0, le=MAX_UPSTREAM_TIMEOUT)


class Settings(BaseSettings):
    """A deployment's configuration. Frozen: build it once, pass it down."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="LYCHGATE_",
        env_nested_delimiter="__",
        validate_default=True,
        allow_inf_nan=False,
    )

    data_dir: Path
    public_url: str = "http://localhost:8080"
    routing: RoutingMode = "single-host"
    # subdomains mode: apps live at <slug>.<domain>; default: the parent of the public host
    domain: str | None = None
    listen: str = "127.0.0.1:8080"
    http_redirect_listen: str | None = None  # plain-HTTP listener that redirects to HTTPS
    metrics_listen: str | None = None  # Prometheus /metrics; off unless set
    authz_listen: str | None = None  # default: unix socket in the data dir
    database_url: Secret | None = None  # default: SQLite in the data dir
    session_ttl: Int = Field(default=12 * 3600, gt=0, le=MAX_TTL)
    session_idle_ttl: Int = Field(default=2 * 3600, gt=0, le=MAX_TTL)
    app_token_ttl: Int = Field(default=3600, gt=0, le=MAX_TTL)
    login_request_ttl: Int = Field(default=120, gt=0, le=600)
    # A gateway keeps serving on its last snapshot while the feed is silent, for at most this
    # many seconds; after that it denies (503) until the feed is back. At least three
    # heartbeats (5 s apart), so that one late heartbeat never denies.
    feed_max_stale: Int = Field(default=300, ge=15, le=86400)
    trusted_proxies: Annotated[tuple[IpNetwork, ...], NoDecode] = ()
    # Every connection to listen and http_redirect_listen begins with a PROXY header from one
    # of trusted_proxies (a TCP load balancer), which names the client (gateway.http.proxy_accept).
    proxy_protocol: Bool = False
    # Peers whose X-Forwarded-* authz believes when it listens on TCP (its gateways). Over the
    # unix socket the gateway is the only peer and is always believed.
    authz_trusted_gateways: Annotated[tuple[IpNetwork, ...], NoDecode] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_insecure_http: Bool = False  # serve plain HTTP on a non-loopback public URL
    # Strict-Transport-Security on the https listener's answers (0: none); never for a loopback
    # or *.localhost public host, where it would hold every local port of that name to https.
    hsts_max_age: Int = Field(default=365 * 86400, ge=0, le=MAX_HSTS_MAX_AGE)
    workers: Int = Field(default=1, ge=1, le=64)
    access_log: Bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    limits: Limits = Limits()

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("must be an origin only (no path, query or credentials)")
        _check_url_port(value)
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("trusted_proxies", "authz_trusted_gateways", mode="before")
    @classmethod
    def _parse_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment
            value = _network_list(value)
        if isinstance(value, list | tuple):
            return tuple(_network(v) for v in value)
        return value

    @field_validator("tls_cert", "tls_key", mode="before")
    @classmethod
    def _check_tls_path(cls, value: Any) -> Any:
        """An empty path is a mistake (``LYCHGATE_TLS_KEY=``), not the current directory."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: give the file's path, or leave the setting out")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: Any) -> Any:
        """``LYCHGATE_LOG_LEVEL=DEBUG`` as ``debug``: level names are written in both cases
        (Python's own are upper-case), and refusing one read as a typo."""
        return value.lower() if isinstance(value, str) else value

    @field_validator("listen", "http_redirect_listen", "metrics_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            _check_known_port(value)
        return value

    @field_validator("authz_listen")
    @classmethod
    def _check_authz_listen(cls, value: str | None) -> str | None:
        """``unix:/absolute/path`` or ``HOST:PORT``; authz serves no TLS itself, so a URL
        (``https://...``) is refused rather than read as a host name."""
        if value is None:
            return value
        if value.startswith("unix:"):
            if not value.removeprefix("unix:").startswith("/"):
                raise ValueError(f"expected unix:/absolute/path, got {value!r}")
            return value
        if "://" in value or "/" in value:
            raise ValueError(f"expected HOST:PORT or unix:/path (no URL), got {value!r}")
        _check_known_port(value)
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _conflict(
                "tls_cert and tls_key must be set together",
                tls_cert=self.tls_cert,
                tls_key=self.tls_key,
            )
        if self.tls_cert is not None and not self.is_https:
            # The listener would speak TLS alone, while every link the deployment gives out
            # says http://: each browser would get "plain HTTP sent to the HTTPS port".
            raise _conflict(
                "tls_cert and tls_key make the gateway serve https, but public_url is http: "
                "make public_url https://, or leave tls_cert and tls_key out",
                tls_cert=self.tls_cert,
                public_url=self.public_url,
            )
        if self.proxy_protocol and not self.trusted_proxies:
            raise _conflict(
                "proxy_protocol needs trusted_proxies: the networks of the load balancers that "
                "send the PROXY header (a connection from any other peer is cut)",
                proxy_protocol=self.proxy_protocol,
                trusted_proxies=list(self.trusted_proxies),
            )
        if self.app_token_ttl > self.session_ttl:
            raise _conflict(
                "app_token_ttl must not exceed session_ttl",
                app_token_ttl=self.app_token_ttl,
                session_ttl=self.session_ttl,
            )
        return self

    # -- derived values -------------------------------------------------------------------

    @property
    def effective_database_url(self) -> Secret:
        if self.database_url is not None:
            return self.database_url
        return Secret(f"sqlite:///{self.data_dir / 'lychgate.db'}")

    @property
    def effective_authz_listen(self) -> str:
        return self.authz_listen or f"unix:{self.data_dir / 'run' / 'authz.sock'}"

    @property
    def public_host(self) -> str:
        host = urlsplit(self.public_url).hostname
        assert host is not None  # checked by the validator
        return host

    @property
    def app_domain(self) -> str:
        """Subdomains mode: apps are ``<slug>.<app_domain>``."""
        if self.domain:
            return self.domain.lower().rstrip(".")
        host = self.public_host
        return host.split(".", 1)[1] if host.count(".") >= 1 else host

    @property
    def is_https(self) -> bool:
        return self.public_url.startswith("https://")


def _conflict(message: str, **compared: Any) -> PydanticCustomError:
    """A check across settings failed. Its error has no one key to blame, so it carries the
    keys it compared and their values: the loader then says where each came from (the bare
    message left an operator to guess which of flag, variable and file to edit)."""
    return PydanticCustomError(
        SETTINGS_CONFLICT, "{message}", {"message": message, "settings": compared}
    )


def _check_url_port(url: str) -> None:
    """A URL's port, if it names one, from 1 to 65535: ``http://localhost:99999`` passed, and
    went into enrollment links no browser can open."""
    netloc = urlsplit(url).netloc
    _, colon, given = netloc.rpartition("]")[2].rpartition(":")
    if colon and not (given.isascii() and given.isdigit() and 1 <= int(given) <= 65535):
        raise ValueError(f"has the port {given!r}: give a port from 1 to 65535, or none")


# How a list of networks is written in an environment variable.
_NETWORKS_FORM: Final = "comma-separated, such as 10.0.0.0/8,192.168.0.0/16 (or a JSON list)"


def _network_list(text: str) -> list[Any]:
    """A comma-separated list (``10.0.0.0/8,::1``), or a JSON list (``["10.0.0.0/8"]``), the
    form a TOML list or another tool's setting suggests."""
    if not text.lstrip().startswith("["):
        return [v.strip() for v in text.split(",") if v.strip()]
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list):
        raise ValueError(f"{text!r} is not a list of networks: write them {_NETWORKS_FORM}")
    return values


def _network(value: Any) -> IpNetwork:
    """An IP network, or a ValueError saying what one looks like (a number, which
    :func:`ipaddress.ip_network` takes for an address, is none). Bits set past the prefix
    (``10.0.0.1/8``) are refused, not dropped: whether the whole /8 or the one host was meant
    decides whom the gateway believes (nginx warns of the same)."""
    if isinstance(value, IpNetwork):
        return value
    try:
        if not isinstance(value, str):
            raise TypeError(value)
        network = ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        raise ValueError(
            f"{value!r} is not an IP network: give networks {_NETWORKS_FORM}"
        ) from None
    if "/" in value and network.network_address != ipaddress.ip_address(value.split("/")[0]):
        raise ValueError(
            f"{value!r} has bits set past its prefix: write {network} for the network, or "
            f"{value.split('/')[0]}/{network.max_prefixlen} for the one address"
        )
    return network


def _check_known_port(value: str) -> None:
    """A listener that others must find: ``HOST:PORT`` with a port from 1 to 65535.

    Port 0 asks the OS for any free port. Browsers, scrapers and gateways could then not know
    where to connect, so a setting refuses it; :func:`parse_hostport` takes it, for the tests
    and tools that start a listener on a port of the OS's choosing and ask it which.
    """
    _, port = parse_hostport(value)
    if port == 0:
        raise ValueError(f"port 0 (any free port) in {value!r}: give the port to listen on")


def parse_hostport(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` to ``(host, port)``; ValueError when invalid.
    Port 0 (any free port) is accepted here; settings refuse it (:func:`_check_known_port`)."""
    if "://" in value:
        raise ValueError(f"expected HOST:PORT, not a URL: got {value!r}")
    if value.count(":") > 1 and not value.startswith("["):
        raise ValueError(f"an IPv6 address needs brackets, as in [::1]:8080: got {value!r}")
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not (port_s.isascii() and port_s.isdigit()):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port
