"""login slice of authz (see docs/sign-in-protocol.md)."""

from lychgate.authz.login import routes

__all__ = ["routes"]
