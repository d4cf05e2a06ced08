"""The settings model.

Every setting has a sane default so that ``lychgate init && lychgate serve`` works on a laptop:
SQLite in the data directory, single-host routing on ``http://localhost:8080``, no trusted
proxies. A value that does not validate, or a key we do not know, fails at start-up and names
the key (see :mod:`lychgate.config.load`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lychgate.secret import Secret

RoutingMode = Literal["single-host", "subdomains"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Limits(BaseModel):
    """Per-listener limits; apps may lower or raise ``max_body_bytes`` and the timeouts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_headers: int = Field(default=100, ge=8, le=1000)
    max_body_bytes: int = Field(default=1024**3, ge=0)
    header_timeout: float = Field(default=10.0, gt=0)  # slowloris: whole head must arrive
    idle_timeout: float = Field(default=60.0, gt=0)  # keep-alive between requests
    tunnel_idle_timeout: float = Field(default=3600.0, gt=0)  # a silent WebSocket is closed
    max_connections_per_client: int = Field(default=1024, ge=0)  # per worker; 0: no cap
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_read_timeout: float = Field(default=60.0, gt=0)


class Settings(BaseSettings):
    """A deployment's configuration. Frozen: build it once, pass it down."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="LYCHGATE_",
        env_nested_delimiter="__",
        validate_default=True,
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
    session_ttl: int = Field(default=12 * 3600, gt=0)
    session_idle_ttl: int = Field(default=2 * 3600, gt=0)
    app_token_ttl: int = Field(default=3600, gt=0)
    login_request_ttl: int = Field(default=120, gt=0, le=600)
    # A gateway keeps serving on its last snapshot while the feed is silent, for at most this
    # many seconds; after that it denies (503) until the feed is back. At least three
    # heartbeats (5 s apart), so that one late heartbeat never denies.
    feed_max_stale: int = Field(default=300, ge=15, le=86400)
    trusted_proxies: Annotated[tuple[IpNetwork, ...], NoDecode] = ()
    # Peers whose X-Forwarded-* authz believes when it listens on TCP (its gateways). Over the
    # unix socket the gateway is the only peer and is always believed.
    authz_trusted_gateways: Annotated[tuple[IpNetwork, ...], NoDecode] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_insecure_http: bool = False  # serve plain HTTP on a non-loopback public URL
    workers: int = Field(default=1, ge=1, le=64)
    access_log: bool = False
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
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("trusted_proxies", "authz_trusted_gateways", mode="before")
    @classmethod
    def _parse_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a comma-separated list
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            return tuple(ipaddress.ip_network(v, strict=False) for v in value)
        return value

    @field_validator("listen", "http_redirect_listen", "metrics_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hostport(value)
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
        parse_hostport(value)
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        if self.app_token_ttl > self.session_ttl:
            raise ValueError("app_token_ttl must not exceed session_ttl")
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


def parse_hostport(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` to ``(host, port)``; ValueError when invalid."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not (port_s.isascii() and port_s.isdigit()):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port
