"""The synchronous edge of the device: load the key and trust, then run one async exchange.

The CLI calls these from plain (non-async) commands. Reading the key file and the CA is
blocking I/O, so it happens here, before :func:`asyncio.run`; each exchange then runs on a
fresh loop with its own connection, and the prompts in between happen with no loop running.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from lychgate.device.client import Connector, DeviceClient, enroll
from lychgate.device.keyfile import DeviceRecord, KeyFile, load_key_file, new_private_key
from lychgate.device.urls import EnrollmentLink
from lychgate.errors import ConfigError
from lychgate.tls.context import client_ssl_context

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Enrolled:
    """An enrolled device, ready to call its server."""

    key_file: KeyFile
    tls: ssl.SSLContext
    connector: Connector
    stored_ca: str | None = None  # the key file's CA, when it is the one trusted (no --ca)

    @property
    def record(self) -> DeviceRecord:
        return self.key_file.record

    def run(self, action: Callable[[DeviceClient], Awaitable[T]]) -> T:
        """Open a client to the enrolled server, run ``action`` with it, and close it."""

        async def exchange() -> T:
            async with self.connector.http(self.record.server, self.tls) as http:
                client = DeviceClient(
                    http, self.key_file, clock=self.connector.clock, stored_ca=self.stored_ca
                )
                return await action(client)

        return asyncio.run(exchange())


def trust_for(ca: Path | None, record: DeviceRecord | None = None) -> ssl.SSLContext:
    """TLS trust: ``--ca`` if given, else the CA remembered at enrollment, else the system's.

    A CA file that cannot be used is a :class:`ConfigError` in the CLI's words: it names
    ``--ca`` (or the key file that remembered the CA), not the TLS module's parameter.
    """
    remembered = False
    if ca is None and record is not None and record.ca_file:
        ca, remembered = Path(record.ca_file), True
    try:
        return client_ssl_context(ca)
    except ConfigError as exc:
        if ca is None:
            raise ConfigError(f"cannot load this system's CA certificates: {exc.message}") from None
        reason = _why_unusable(exc.__cause__)
        if remembered:
            raise ConfigError(
                f"cannot use {ca}, the CA certificate this device was enrolled with: {reason}; "
                "pass --ca FILE (from `lychgate ca export`)"
            ) from None
        raise ConfigError(f"cannot use {ca} as the CA file: {reason}", field="--ca") from None


def _why_unusable(cause: BaseException | None) -> str:
    """Why a CA file could not be loaded, in plain words."""
    if isinstance(cause, ssl.SSLError):  # an OSError too: test it first
        return "it holds no PEM certificate"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return "it cannot be read"


def open_enrolled(key_path: Path, ca: Path | None, connector: Connector) -> Enrolled:
    """Load the key file (refusing a loose one) and the TLS trust for its server."""
    key_file = load_key_file(key_path)
    stored = key_file.record.ca_file if ca is None else None
    return Enrolled(key_file, trust_for(ca, key_file.record), connector, stored or None)


def enroll_device(
    link: EnrollmentLink,
    *,
    name: str,
    user_name: str | None,
    email: str | None,
    ca: Path | None,
    connector: Connector,
    now: datetime,
) -> KeyFile:
    """Make a new key and redeem ``link`` for it. The caller saves the returned key file."""
    ca_file = ca.resolve() if ca is not None else None
    tls = trust_for(ca_file)
    key = new_private_key()

    async def exchange() -> KeyFile:
        async with connector.http(str(link.origin), tls) as http:
            return await enroll(
                http,
                link,
                key,
                name=name,
                user_name=user_name,
                email=email,
                now=now,
                ca_file=str(ca_file) if ca_file is not None else None,
            )

    return asyncio.run(exchange())
