"""The exception tree.

One root, few branches. A subclass exists only where a caller handles it differently::

    LychgateError                 root; carries an HTTP status hint and the failing field
    ├── ConfigError               bad or unknown setting, found at start-up (names the key)
    ├── ClientError               the client sent something we refuse (4xx)
    │   ├── TokenError            a token failed verification (see tokens.errors for kinds)
    │   ├── NotFound              no such user, app, device, request ... (404)
    │   ├── Conflict              already exists / already used (409)
    │   └── RateLimited           too many attempts (429)
    ├── StoreError                the store failed (5xx, fail closed)
    └── UsageError                we misused our own API: a bug, never the client's fault

"The client sent garbage" (ClientError) is kept apart from "we misused the API" (UsageError).
"""

from __future__ import annotations


class LychgateError(Exception):
    """Root of every error Lychgate raises on purpose."""

    status: int = 500

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}: {self.message}"
        return self.message


class ConfigError(LychgateError):
    """A setting is missing, unknown or invalid. Raised at start-up, naming the key."""

    status = 500


class ClientError(LychgateError):
    """The client sent something we refuse."""

    status = 400


class TokenError(ClientError):
    """A token failed verification. ``reason`` says which check failed."""

    status = 401

    def __init__(self, message: str, *, reason: str, field: str | None = None):
        super().__init__(message, field=field)
        self.reason = reason


class NotFound(ClientError):
    status = 404


class Conflict(ClientError):
    status = 409


class RateLimited(ClientError):
    status = 429

    def __init__(self, message: str, *, retry_after: float, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = retry_after


class StoreError(LychgateError):
    """The store failed. Callers fail closed."""

    status = 503


class UsageError(LychgateError):
    """We called our own API wrongly. A bug, never the client's fault."""

    status = 500
