"""enroll slice of authz (see docs/sign-in-protocol.md)."""

from lychgate.authz.enroll import routes

__all__ = ["routes"]
