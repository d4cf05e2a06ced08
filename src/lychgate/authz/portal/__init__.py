"""portal slice of authz (see docs/sign-in-protocol.md)."""

from lychgate.authz.portal import routes

__all__ = ["routes"]
