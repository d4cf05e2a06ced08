"""Renewed certificates reach a running listener (lychgate.gateway.http.tls, .cert_reload).

Loading and checking files blocks, so the async tests do it in a thread, as the gateway does.

Each test serves real TLS handshakes on loopback and looks at the certificate presented: the
first generation is issued for ``one.example``, a renewal for ``two.example``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from gateway.client import peer_names
from gateway.conftest import Start, forward_to
from gateway.waiting import eventually
from lychgate.deployment.init import prepare_files
from lychgate.errors import ConfigError
from lychgate.gateway.cert_reload import CertificateReloader
from lychgate.gateway.http.tls import CertPair, ServerCertificates, certificate_covers
from lychgate.gateway.plan import app_names, prepare
from lychgate.tls.files import ensure_tls_material, renew_server_cert

pytestmark = pytest.mark.loopback


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, as certbot and most tools do (a new inode)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _issue(ca: trustme.CA, pair: CertPair, *names: str, key: bool = True) -> None:
    cert = ca.issue_cert(*names)
    _write(pair.cert_file, b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    if key:
        _write(pair.key_file, cert.private_key_pem.bytes())


@pytest.fixture
def pair(ca: trustme.CA, tmp_path: Path) -> CertPair:
    pair = CertPair(tmp_path / "server.pem", tmp_path / "server.key")
    _issue(ca, pair, "one.example")
    return pair


async def test_a_renewed_certificate_is_served_to_new_connections(
    gateway: Start, ca: trustme.CA, pair: CertPair
) -> None:
    certs = await asyncio.to_thread(ServerCertificates, pair)
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=certs.context)
    assert await peer_names(gw.port, ca) == ["one.example"]
    assert await asyncio.to_thread(certs.reload) is False  # nothing changed
    first_expiry = certs.not_after

    await asyncio.to_thread(_issue, ca, pair, "two.example")
    assert await peer_names(gw.port, ca) == ["one.example"]  # not before the check
    assert await asyncio.to_thread(certs.reload) is True
    assert await peer_names(gw.port, ca) == ["two.example"]
    assert await peer_names(gw.port, ca, "one.example") == ["two.example"]
    assert await asyncio.to_thread(certs.reload) is False
    assert certs.not_after >= first_expiry


async def test_files_caught_half_written_keep_the_old_certificate(
    gateway: Start, ca: trustme.CA, pair: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    certs = await asyncio.to_thread(ServerCertificates, pair)
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=certs.context)
    await asyncio.to_thread(
        _issue, ca, pair, "two.example", key=False
    )  # the new certificate, still the old key
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.tls"):
        assert await asyncio.to_thread(certs.reload) is False
        assert (
            await asyncio.to_thread(certs.reload) is False
        )  # the same files: refused once, not logged again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "still serving the old" in warnings[0].getMessage()
    assert await peer_names(gw.port, ca) == ["one.example"]

    await asyncio.to_thread(
        _issue, ca, pair, "two.example"
    )  # the writer finishes: a pair that matches
    assert await asyncio.to_thread(certs.reload) is True
    assert await peer_names(gw.port, ca) == ["two.example"]


async def test_a_missing_file_keeps_the_old_certificate(
    gateway: Start, ca: trustme.CA, pair: CertPair
) -> None:
    certs = await asyncio.to_thread(ServerCertificates, pair)
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=certs.context)
    await asyncio.to_thread(pair.key_file.unlink)
    assert await asyncio.to_thread(certs.reload) is False
    assert await peer_names(gw.port, ca) == ["one.example"]


def test_a_change_in_place_is_seen(ca: trustme.CA, pair: CertPair) -> None:
    # Rewritten in place (same inode, maybe the same size): the modification time tells.
    certs = ServerCertificates(pair)
    cert = ca.issue_cert("two.example")
    pair.cert_file.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    pair.key_file.write_bytes(cert.private_key_pem.bytes())
    later = pair.cert_file.stat().st_mtime_ns + 1_000_000_000
    os.utime(pair.cert_file, ns=(later, later))
    assert certs.reload() is True


async def test_certificates_chosen_by_name_are_renewed_too(
    gateway: Start, ca: trustme.CA, pair: CertPair, tmp_path: Path
) -> None:
    app = CertPair(tmp_path / "app.pem", tmp_path / "app.key")
    await asyncio.to_thread(_issue, ca, app, "app.example")
    certs = await asyncio.to_thread(ServerCertificates, pair, {"app.example": app})
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=certs.context)
    assert await peer_names(gw.port, ca, "app.example") == ["app.example"]
    await asyncio.to_thread(_issue, ca, app, "app2.example")
    assert await asyncio.to_thread(certs.reload) is True
    assert await peer_names(gw.port, ca, "app.example") == ["app2.example"]
    assert await peer_names(gw.port, ca) == ["one.example"]  # the default pair did not change


def test_a_bad_pair_at_start_up_is_a_config_error(pair: CertPair, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load TLS certificate"):
        ServerCertificates(CertPair(pair.cert_file, tmp_path / "nothing.key"))


async def test_the_reloader_checks_on_its_own_and_on_request(
    gateway: Start, ca: trustme.CA, pair: CertPair
) -> None:
    certs = await asyncio.to_thread(ServerCertificates, pair)
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=certs.context)
    reloader = CertificateReloader(certs, interval=0.05)
    task = asyncio.create_task(reloader.run())
    try:
        await asyncio.to_thread(_issue, ca, pair, "two.example")
        async with asyncio.timeout(10):  # the timed check picks it up
            while await peer_names(gw.port, ca) != ["two.example"]:
                await asyncio.sleep(0.02)

        slow = CertificateReloader(certs, interval=3600)
        slow_task = asyncio.create_task(slow.run())
        try:
            await asyncio.to_thread(_issue, ca, pair, "three.example")
            slow.request()  # what SIGHUP does
            await eventually(lambda: slow.checks >= 1)
            assert await peer_names(gw.port, ca) == ["three.example"]
        finally:
            slow_task.cancel()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_an_expiry_near_is_warned_about_once_a_day(
    pair: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    certs = ServerCertificates(pair)
    clock = _Clock(certs.not_after - timedelta(days=30))
    reloader = CertificateReloader(certs, clock=clock)
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.cert_reload"):
        reloader.watch_expiry()  # a month ahead: nothing to say
        clock.now = certs.not_after - timedelta(days=10)
        reloader.watch_expiry()
        clock.now += timedelta(hours=3)
        reloader.watch_expiry()  # said already today
        clock.now += timedelta(days=1)
        reloader.watch_expiry()
        clock.now = certs.not_after + timedelta(minutes=1)
        reloader.watch_expiry()
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == [logging.WARNING, logging.WARNING, logging.ERROR]
    assert "expires in 10.0 days" in said[0][1]
    assert "expired at" in said[2][1]


def _internal(tls_dir: Path, issued_at: datetime) -> CertPair:
    """An internal CA and its server certificate, as lychgate init made them at issued_at."""
    paths = ensure_tls_material(tls_dir, ["gw.example"], now=issued_at)
    return CertPair(paths.server_cert, paths.server_key)


async def test_the_internal_certificate_is_renewed_and_served_when_due(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    tls_dir = tmp_path / "tls"
    # Issued 380 days ago: 17 days left, within the month ahead when renewal is due.
    pair = await asyncio.to_thread(_internal, tls_dir, now - timedelta(days=380))
    certs = await asyncio.to_thread(ServerCertificates, pair)
    old_expiry = certs.not_after
    renew = partial(renew_server_cert, tls_dir, ["gw.example"])
    reloader = CertificateReloader(certs, interval=0.05, renew=renew)
    task = asyncio.create_task(reloader.run())
    try:
        await eventually(lambda: certs.not_after != old_expiry)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert certs.not_after - now > timedelta(days=390)
    assert not await reloader.renew_if_due()  # a year ahead: nothing to do


async def test_a_renewal_is_tried_only_when_due(pair: CertPair) -> None:
    certs = await asyncio.to_thread(ServerCertificates, pair)
    calls: list[datetime] = []

    def renew(now: datetime) -> bool:
        calls.append(now)
        return False

    clock = _Clock(certs.not_after - timedelta(days=31))
    reloader = CertificateReloader(certs, clock=clock, renew=renew)
    assert not await reloader.renew_if_due()
    assert calls == []
    clock.now = certs.not_after - timedelta(days=29)
    assert not await reloader.renew_if_due()  # tried: the files were fresh already
    assert calls == [clock.now]


async def test_a_failed_renewal_is_logged_and_tried_again_an_hour_later(
    pair: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    certs = await asyncio.to_thread(ServerCertificates, pair)
    attempts = 0

    def renew(now: datetime) -> bool:
        nonlocal attempts
        attempts += 1
        raise ConfigError("the internal CA expires on 2027-01-01; move ca.pem ...")

    clock = _Clock(certs.not_after - timedelta(days=20))
    reloader = CertificateReloader(certs, clock=clock, renew=renew)
    with caplog.at_level(logging.ERROR, logger="lychgate.gateway.cert_reload"):
        assert not await reloader.renew_if_due()
        clock.now += timedelta(minutes=59)
        assert not await reloader.renew_if_due()
        clock.now += timedelta(minutes=1)
        assert not await reloader.renew_if_due()
    assert attempts == 2
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert "could not renew the TLS certificate from the internal CA: the internal CA" in said[0]


def test_the_gateway_renews_only_what_its_own_internal_ca_issued(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    files = prepare_files(tmp_path, {}, public_url="https://gw.example", now=now)
    assert prepare(files.settings).renew_tls is not None
    (tmp_path / "tls" / "ca.key").unlink()  # a gateway node without the CA's key
    assert prepare(files.settings).renew_tls is None
    own = tmp_path / "own"
    own.mkdir()
    pair = _internal(own, now)  # the operator's own files: never re-issued by us
    settings = files.settings.model_copy(
        update={"tls_cert": pair.cert_file, "tls_key": pair.key_file}
    )
    assert prepare(settings).renew_tls is None


def _write_cert(pair: CertPair, cert: trustme.LeafCert) -> None:
    _write(pair.cert_file, b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    _write(pair.key_file, cert.private_key_pem.bytes())


_NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("name", "not_before", "not_after", "why"),
    [
        ("one.example", _NOW - timedelta(days=90), _NOW - timedelta(days=1), "not now"),
        ("one.example", _NOW + timedelta(days=1), _NOW + timedelta(days=90), "not now"),
        ("wrong.example", None, None, "does not name one.example"),
    ],
    ids=["expired", "not-yet-valid", "another-host"],
)
async def test_a_renewal_that_would_fail_every_handshake_keeps_the_old_certificate(
    gateway: Start,
    ca: trustme.CA,
    pair: CertPair,
    caplog: pytest.LogCaptureFixture,
    name: str,
    not_before: datetime | None,
    not_after: datetime | None,
    why: str,
) -> None:
    # Each used to be served at once: every client failed from then on, while the previous
    # good pair was still in memory.
    certs = await asyncio.to_thread(partial(ServerCertificates, pair, hosts=["ONE.example."]))
    gw = await gateway(forward_to("http://127.0.0.1:9"), ssl=certs.context)
    bad = ca.issue_cert(name, not_before=not_before, not_after=not_after)
    await asyncio.to_thread(_write_cert, pair, bad)
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.tls"):
        assert await asyncio.to_thread(certs.reload) is False
    assert why in caplog.text
    assert "still serving the old" in caplog.text
    assert await peer_names(gw.port, ca) == ["one.example"]
    await asyncio.to_thread(_issue, ca, pair, "one.example")  # a good renewal is taken
    assert await asyncio.to_thread(certs.reload) is True


def test_a_wildcard_covers_one_label_and_an_address_only_itself(ca: trustme.CA) -> None:
    leaf = x509.load_pem_x509_certificate(
        ca.issue_cert("*.apps.example", "127.0.0.1").cert_chain_pems[0].bytes()
    )
    assert certificate_covers(leaf, "wiki.apps.example")
    assert certificate_covers(leaf, "WIKI.apps.example.")
    assert not certificate_covers(leaf, "apps.example")
    assert not certificate_covers(leaf, "a.wiki.apps.example")
    assert certificate_covers(leaf, "127.0.0.1")
    assert not certificate_covers(leaf, "127.0.0.2")


async def test_a_renewal_without_the_wildcard_the_apps_need_keeps_the_old_certificate(
    ca: trustme.CA, pair: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    # Subdomains mode: a renewal that named the portal alone (certbot run with one -d) was
    # taken, and every app's host then failed its handshake until someone noticed.
    await asyncio.to_thread(_issue, ca, pair, "example.test", "*.example.test")
    also = app_names("example.test")
    certs = await asyncio.to_thread(
        partial(ServerCertificates, pair, hosts=["auth.example.test"], also=also)
    )
    await asyncio.to_thread(_issue, ca, pair, "auth.example.test")
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.tls"):
        assert await asyncio.to_thread(certs.reload) is False
    assert "does not name example.test, any-app.example.test" in caplog.text
    await asyncio.to_thread(_issue, ca, pair, "*.example.test", "example.test")
    assert await asyncio.to_thread(certs.reload) is True


async def test_names_the_certificate_in_use_lacks_are_not_asked_of_a_renewal(
    ca: trustme.CA, pair: CertPair
) -> None:
    # An operator's certificate that lists each app's host, with no wildcard: its renewal,
    # the same names again, is taken.
    await asyncio.to_thread(_issue, ca, pair, "auth.example.test", "wiki.example.test")
    also = app_names("example.test")
    certs = await asyncio.to_thread(
        partial(ServerCertificates, pair, hosts=["auth.example.test"], also=also)
    )
    await asyncio.to_thread(_issue, ca, pair, "auth.example.test", "wiki.example.test")
    assert await asyncio.to_thread(certs.reload) is True


def test_a_start_with_a_certificate_browsers_refuse_says_so(
    pair: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    # The start took a certificate for another host, or one not valid yet, without a word,
    # where a renewal of the same files is refused: every browser then refused the gateway.
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.tls"):
        ServerCertificates(pair, hosts=("one.example",))
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.http.tls"):
        ServerCertificates(pair, hosts=("gate.example",))
        leaf = x509.load_pem_x509_certificates(pair.cert_file.read_bytes())[0]
        early = leaf.not_valid_before_utc - timedelta(days=1)
        ServerCertificates(pair, hosts=("one.example",), clock=lambda: early)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"the TLS certificate {pair.cert_file} does not name gate.example, which this gateway "
        "serves: browsers will refuse it there",
        said[1],
    ]
    assert said[1].startswith(f"the TLS certificate {pair.cert_file} is not valid until ")
