"""Per-deployment secrets that are not app-token signing keys.

- ``internal_token``: the bearer secret between gateways and authz (feed, code redemption).
- ``seal_key``: the 256-bit key for sealed registration handoffs (JWE ``dir`` + A256GCM).
- ``assertion_key``: the ES256 key that gateways sign identity assertions with. It is handed
  to gateways over the feed, so it is deliberately *not* an app-token key: a gateway must not
  hold a key that mints the tokens it admits.

Created once by ``init``. A later ``init`` adds what is missing and never replaces a value:
replacing one would cut off running gateways and break links in flight. Every authz replica of
a cluster must share this file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lychgate.domain import SigningKey
from lychgate.errors import ConfigError
from lychgate.files import PRIVATE_MODE, write_atomic
from lychgate.ids import KeyId
from lychgate.secret import Secret
from lychgate.tokens import generate_signing_key, new_code, new_seal_key


@dataclass(frozen=True, slots=True)
class DeploymentSecrets:
    internal_token: Secret
    seal_key: Secret  # base64url of 32 random bytes
    assertion_key: SigningKey

    def seal_key_bytes(self) -> bytes:
        return base64.urlsafe_b64decode(self.seal_key.reveal() + "==")


# Domain separation: this hash of the secrets is never the hash of anything else.
_FINGERPRINT_DOMAIN = b"lychgate secrets.json fingerprint v1\x00"


def secrets_fingerprint(secrets: DeploymentSecrets) -> str:
    """A one-way fingerprint of the secrets every node must share, as hex (SHA-256).

    The database records it, so that a node whose secrets.json differs from the deployment's
    is refused at start. It is a hash over a canonical JSON of the secret values (sorted keys,
    the JWK parsed), prefixed with a domain of its own; the values are 256-bit random secrets,
    so the hash gives none of them away. The key's ``created_at`` is left out: it changes
    nothing a node serves.
    """
    canonical = {
        "internal_token": secrets.internal_token.reveal(),
        "seal_key": secrets.seal_key.reveal(),
        "assertion_key": {
            "kid": secrets.assertion_key.kid,
            "jwk": json.loads(secrets.assertion_key.private_jwk.reveal()),
        },
    }
    body = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(_FINGERPRINT_DOMAIN + body).hexdigest()


def load_secrets(path: Path) -> DeploymentSecrets:
    """Read the secrets file. A missing or damaged file is a ConfigError naming the file."""
    raw = _read(path)
    if raw is None:
        raise ConfigError(f"{path} is missing; run `lychgate init` first", field="secrets")
    try:
        return _parse(raw)
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is damaged or incomplete; run `lychgate init`", field="secrets"
        ) from None


def ensure_secrets(path: Path, now: datetime) -> tuple[DeploymentSecrets, bool]:
    """Load the secrets, creating the file or its missing members. Returns (secrets, changed)."""
    raw = _read(path)
    current = dict(raw) if raw is not None else {}
    missing = _fresh_members(now).items()
    added = {k: v for k, v in missing if k not in current}
    if added:
        current.update(added)
        body = json.dumps(current, indent=2).encode() + b"\n"
        write_atomic(path, body, mode=PRIVATE_MODE, overwrite=raw is not None)
    return load_secrets(path), bool(added)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON", field="secrets") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is damaged", field="secrets")
    return raw


def _fresh_members(now: datetime) -> dict[str, Any]:
    key = generate_signing_key(now)
    return {
        "internal_token": new_code(),
        "seal_key": new_seal_key().reveal(),
        "assertion_key": {
            "kid": key.kid,
            "jwk": json.loads(key.private_jwk.reveal()),
            "created_at": key.created_at.isoformat(),
        },
    }


def _parse(raw: dict[str, Any]) -> DeploymentSecrets:
    key = raw["assertion_key"]
    found = DeploymentSecrets(
        internal_token=Secret(str(raw["internal_token"])),
        seal_key=Secret(str(raw["seal_key"])),
        assertion_key=SigningKey(
            kid=KeyId(str(key["kid"])),
            private_jwk=Secret(json.dumps(key["jwk"], sort_keys=True)),
            created_at=datetime.fromisoformat(str(key["created_at"])).astimezone(UTC),
        ),
    )
    if len(found.seal_key_bytes()) != 32 or len(found.internal_token.reveal()) < 32:
        raise ValueError("secret of the wrong size")
    return found
