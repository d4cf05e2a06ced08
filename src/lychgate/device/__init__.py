"""The CLI authenticator (``lychgate device``): a device key in a 0600 file, and its client.

* :mod:`~lychgate.device.keyfile` -- the key file: the Ed25519 key and what enrollment said.
* :mod:`~lychgate.device.urls` -- strict parsing of enrollment and sign-in links.
* :mod:`~lychgate.device.wire` -- the JSON the server answers with, as frozen values.
* :mod:`~lychgate.device.client` -- signed calls (docs/sign-in-protocol.md, "Device calls").
* :mod:`~lychgate.device.runner` -- the synchronous edge the CLI calls: load, then one exchange.
* :mod:`~lychgate.device.png` and :mod:`~lychgate.device.qrimage` -- reading a QR code from a
  PNG screenshot, without an image library.

Everything here that touches files is synchronous and runs before or after the event loop;
only the network calls are async.
"""
