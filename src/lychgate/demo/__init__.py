"""The demo apps that ``lychgate serve --demo`` (and ``make run``) puts behind the gateway.

* :mod:`~lychgate.demo.verify`: how an upstream app verifies ``X-Lychgate-Assertion`` against
  the deployment's JWKS (the reference for app authors).
* :mod:`~lychgate.demo.whoami`: shows the identity headers and the verified claims.
* :mod:`~lychgate.demo.chat`: a WebSocket chat; the sender's name comes from the assertion.
* :mod:`~lychgate.demo.apps`, :mod:`~lychgate.demo.bootstrap`, :mod:`~lychgate.demo.runner`,
  :mod:`~lychgate.demo.banner`: registering the apps, running them on unix sockets inside the
  ``serve`` process tree, and the next-steps text.
"""
