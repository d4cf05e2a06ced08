"""device slice of authz (see docs/sign-in-protocol.md)."""

from lychgate.authz.device import routes

__all__ = ["routes"]
