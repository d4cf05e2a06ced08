"""Where things live inside a deployment directory.

::

    <data_dir>/
      lychgate.toml      settings (written by ``init``; edit freely)
      secrets.json       0600: internal feed token and the registration seal key
      lychgate.db        SQLite store (the embedded default)
      tls/               internal CA and server certificate (https deployments)
      run/               unix sockets of a running ``serve``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "lychgate.toml"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"
