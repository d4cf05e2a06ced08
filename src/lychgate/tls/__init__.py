"""TLS for public URLs that are not loopback: the internal CA and its files.

* :mod:`~lychgate.tls.hosts`: which names need a certificate; when plain HTTP is allowed.
* :mod:`~lychgate.tls.ca`: create the CA and issue server certificates (pure).
* :mod:`~lychgate.tls.constraints`: the CA's name constraints.
* :mod:`~lychgate.tls.files`: keep the material on disk, idempotently (blocking I/O).
* :mod:`~lychgate.tls.atomic`: crash-safe file writes and the directory lock.
* :mod:`~lychgate.tls.context`: ``ssl.SSLContext`` for the gateway and its upstreams.
"""
