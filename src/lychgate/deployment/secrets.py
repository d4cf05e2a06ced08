"""Per-deployment secrets that are not signing keys.

- ``internal_token``: the bearer secret between gateways and authz (feed, code redemption).
- ``seal_key``: the 256-bit key for sealed registration handoffs (JWE ``dir`` + A256GCM).

Created once by ``init`` and never replaced by a later ``init``: replacing them would cut off
running gateways and invalidate registration links in flight.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from lychgate.errors import ConfigError
from lychgate.files import PRIVATE_MODE, write_atomic
from lychgate.secret import Secret


@dataclass(frozen=True, slots=True)
class DeploymentSecrets:
    internal_token: Secret
    seal_key: Secret  # base64url of 32 random bytes

    def seal_key_bytes(self) -> bytes:
        return base64.urlsafe_b64decode(self.seal_key.reveal() + "==")


def generate_secrets() -> DeploymentSecrets:
    return DeploymentSecrets(
        internal_token=Secret(secrets.token_urlsafe(32)),
        seal_key=Secret(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")),
    )


def load_secrets(path: Path) -> DeploymentSecrets:
    """Read the secrets file. A missing or damaged file is a ConfigError naming the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        found = DeploymentSecrets(
            internal_token=Secret(str(raw["internal_token"])),
            seal_key=Secret(str(raw["seal_key"])),
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{path} is missing; run `lychgate init` first", field="secrets"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is damaged", field="secrets") from None
    if len(found.seal_key_bytes()) != 32:
        raise ConfigError(f"{path} holds a seal key of the wrong size", field="seal_key")
    return found


def ensure_secrets(path: Path) -> tuple[DeploymentSecrets, bool]:
    """Load the secrets, creating them when absent. Returns (secrets, created)."""
    if path.exists():
        return load_secrets(path), False
    fresh = generate_secrets()
    body = {"internal_token": fresh.internal_token.reveal(), "seal_key": fresh.seal_key.reveal()}
    write_atomic(
        path, json.dumps(body, indent=2).encode() + b"\n", mode=PRIVATE_MODE, overwrite=False
    )
    return fresh, True
