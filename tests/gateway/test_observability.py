"""Metrics, the access log, and the small handlers of the gateway runner."""

from __future__ import annotations

import asyncio
import errno
import io
import ipaddress
import json
import logging
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.world import World
from lychgate.config import load_settings
from lychgate.gateway.accesslog import LINE_MAX, AccessLog, AccessLogHandler, access_line
from lychgate.gateway.http.tunnel import TunnelEnded
from lychgate.gateway.metrics import GatewayMetrics
from lychgate.gateway.plan import engine_limits
from lychgate.gateway.runner import (
    metrics_handler,
    redirect_handler,
    response_hook,
    tunnel_end_hook,
)
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import Local, RequestHead, Respond
from lychgate.ids import AppSlug, SessionId, UserId, session_handle, token_sid


def head(path: str = "/x", query: str = "", host: str = "app.example.com") -> RequestHead:
    return RequestHead(
        method="GET",
        target=path + ("?" + query if query else ""),
        path=path,
        query=query,
        headers=(
            ("host", host),
            ("user-agent", "test"),
            ("cookie", "lychgate=secret-token"),
            ("authorization", "Bearer secret"),
        ),
        http_version="1.1",
        client_ip="192.0.2.7",
        scheme="http",
    )


def run(answer: Awaitable[Respond]) -> Respond:
    """A local endpoint's answer, on a loop of its own."""

    async def wait() -> Respond:
        return await answer

    return asyncio.run(wait())


def scrape(metrics: GatewayMetrics) -> Respond:
    """What the metrics listener answers to ``GET /metrics``."""
    answer = metrics_handler(metrics)(head("/metrics"))
    assert isinstance(answer, Local)
    return run(answer.endpoint(head("/metrics")))


def test_access_line_has_the_fields_and_no_secrets() -> None:
    line = access_line(
        head("/.lychgate/callback", "code=one-time-secret"),
        AppSlug("wiki"),
        302,
        0.0123,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    record = json.loads(line)
    assert record == {
        "ts": "2026-01-01T00:00:00.000+00:00",
        "status": 302,
        "ms": 12.3,
        "app": "wiki",
        "client": "192.0.2.7",
        "method": "GET",
        "host": "app.example.com",
        "path": "/.lychgate/callback",
        "ua": "test",
    }
    assert "secret" not in line


@pytest.mark.parametrize(
    "path",
    [
        "/.lychgate/enroll/SETUPCODE_abcdefghijklmnop",
        "/.LYCHGATE/Enroll/SETUPCODE_abcdefghijklmnop",
        # Other spellings routing reads the same, which authz serves all the same.
        "//.lychgate/enroll/SETUPCODE_abcdefghijklmnop",
        "/.lychgate/./enroll/SETUPCODE_abcdefghijklmnop",
        "/%2Elychgate/enroll/SETUPCODE_abcdefghijklmnop",
        "/.lychgate/%65nroll/SETUPCODE_abcdefghijklmnop",
        "/x/../.lychgate/enroll/SETUPCODE_abcdefghijklmnop",
        "/.lychgate//enroll/SETUPCODE_abcdefghijklmnop",
        "/.lychgate/enroll/SETUPCODE_abcdefghijklmnop%00",  # refused, and left out whole
    ],
)
def test_an_enrollment_links_code_is_never_logged(path: str) -> None:
    # The code is the link's last segment: whoever reads the log before it expires could
    # enroll a device, or become the first admin.
    line = access_line(head(path), None, 200, 0.001, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert "SETUPCODE" not in line
    assert json.loads(line)["path"].endswith("<redacted>")


def test_other_paths_are_logged_as_sent() -> None:
    for path in ("/wiki/Enrollment", "/a//b", "/%7Euser/"):
        line = access_line(head(path), None, 200, 0.001, now=datetime(2026, 1, 1, tzinfo=UTC))
        assert json.loads(line)["path"] == path


@pytest.mark.parametrize(
    ("ua", "path"),
    [
        ("a" * 6000, "/x"),
        ("a" * 3000, "/" + "b" * 3000),
        ("\xe9" * 3000, "/" + "\xff" * 12000),  # six bytes of JSON each (\u00e9)
        ("a" * 16000, "/" + "b" * 16000),  # as long as a head may be, both
        ("u" * 5000, "/" + "a" * 5000),  # the path longer: it used to be cut to nothing
    ],
    ids=["long ua", "both long", "not ascii", "longest", "padded ua, long path"],
)
def test_a_long_record_is_cut_to_one_write_into_a_shared_pipe(ua: str, path: str) -> None:
    # Several workers write to one stdout: a pipe keeps a write whole only up to PIPE_BUF
    # (4096 bytes), and longer records from two workers were spliced together.
    request = replace(
        head(path), headers=(("host", "app.example.com"), ("user-agent", ua)), target=path
    )
    line = access_line(request, AppSlug("wiki"), 200, 0.001, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert len(line) + 1 <= LINE_MAX == 4096
    record = json.loads(line)
    assert record["truncated"] is True
    sent = {"ua": ua, "path": path}
    cut = [k for k in sent if record[k].endswith("...(cut)")]
    assert "ua" in cut  # the User-Agent first: the path is cut last, and only if it must be
    for k in cut:  # each keeps its start, as much as fits
        kept = record[k].removesuffix("...(cut)")
        assert sent[k].startswith(kept)
    assert len(line) > 3900
    # The URL asked for keeps what the line can hold of it, however the client pads.
    assert record["path"].removesuffix("...(cut)") == path[: len(record["path"]) - 8] or (
        record["path"] == path
    )
    assert len(json.dumps(record["path"])) >= min(len(json.dumps(path)), 2000)
    assert record["host"] == "app.example.com"
    assert record["host"] == "app.example.com"
    assert record["status"] == 200


def test_a_record_that_fits_is_not_cut() -> None:
    request = replace(head(), headers=(("host", "h"), ("user-agent", "a" * 3500)))
    record = json.loads(
        access_line(request, None, 200, 0.001, now=datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert record["ua"] == "a" * 3500
    assert "truncated" not in record


@pytest.mark.parametrize(
    ("peer", "forwarded", "client", "peer_logged"),
    [
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9", "10.0.0.2"),  # behind the load balancer
        ("10.0.0.2", ["198.51.100.1, 203.0.113.9", "10.0.0.1"], "203.0.113.9", "10.0.0.2"),
        ("192.0.2.7", ["203.0.113.9"], "192.0.2.7", None),  # not a trusted proxy: its claim
        ("10.0.0.2", [], "10.0.0.2", None),  # a trusted proxy that forwards nothing
    ],
)
def test_behind_a_trusted_proxy_the_client_is_the_one_it_forwards_for(
    peer: str, forwarded: list[str], client: str, peer_logged: str | None
) -> None:
    # Every record behind a load balancer named the balancer as the client.
    base = head()
    fields = base.headers + tuple(("x-forwarded-for", value) for value in forwarded)
    request = RequestHead(
        base.method, base.target, base.path, base.query, fields, "1.1", peer, "http"
    )
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    record = json.loads(access_line(request, None, 200, 0.001, now=now, trusted=trusted))
    assert (record["client"], record.get("peer")) == (client, peer_logged)


def test_access_line_says_why_the_gateway_answered() -> None:
    line = access_line(
        head("/admin"),
        AppSlug("admin"),
        403,
        0.001,
        now=datetime(2026, 1, 1, tzinfo=UTC),
        reason="admins only",
    )
    assert json.loads(line)["reason"] == "admins only"


@dataclass(frozen=True)
class Who:
    user_id: UserId
    session_id: SessionId


ADA = Who(UserId("u_ada"), token_sid(SessionId("ses_1")))  # the gateway knows the handle


def test_access_line_names_the_signed_in_user_and_session() -> None:
    # Who reached an app, or was refused by its policy: what an operator audits. The session
    # by its public handle, the one its token carries: its id is the authz cookie's bearer
    # secret, which the gateway never learns.
    line = access_line(
        head("/admin"),
        AppSlug("admin"),
        403,
        0.001,
        now=datetime(2026, 1, 1, tzinfo=UTC),
        reason="admins only",
        who=ADA,
    )
    record = json.loads(line)
    assert (record["user"], record["reason"]) == ("u_ada", "admins only")
    assert record["session"] == session_handle(SessionId("ses_1"))
    assert "ses_1" not in line
    anonymous = json.loads(
        access_line(head(), None, 302, 0.0, now=datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert "user" not in anonymous
    assert "session" not in anonymous


def test_access_line_for_a_refused_head() -> None:
    record = json.loads(access_line(None, None, 400, 0.0, now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert record["status"] == 400
    assert "path" not in record


def test_response_hook_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    metrics = GatewayMetrics()
    hook = response_hook(metrics, AccessLog())
    with caplog.at_level(logging.INFO, logger="lychgate.access"):
        hook(head(), AppSlug("wiki"), 200, 0.01, "", ADA, "a1")
        hook(head(), AppSlug("wiki"), 200, 0.02, "", None, "a2")
        hook(head(), None, 404, 0.001, "no route", None, "a3")
    assert len(caplog.records) == 3
    records = [json.loads(r.getMessage()) for r in caplog.records]
    assert [r.get("reason") for r in records] == [None, None, "no route"]
    assert [r["request_id"] for r in records] == ["a1", "a2", "a3"]
    assert [r.get("user") for r in records] == ["u_ada", None, None]
    text = scrape(metrics).body.decode()
    assert 'lychgate_gateway_requests_total{app="wiki",status="200",worker="0"} 2.0' in text
    assert 'lychgate_gateway_requests_total{app="-",status="404",worker="0"} 1.0' in text
    assert "lychgate_gateway_request_duration_seconds_bucket" in text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/metrics", 200),
        ("HEAD", "/metrics", 200),
        ("POST", "/metrics", 405),
        ("GET", "/", 404),
        ("HEAD", "/other", 404),
    ],
)
def test_the_metrics_listener_answers_head_and_names_its_methods(
    method: str, path: str, status: int
) -> None:
    # A monitor that checks the endpoint with HEAD used to find a 404 and call it down.
    answer = metrics_handler(GatewayMetrics())(replace(head(path), method=method))
    if isinstance(answer, Local):
        answer = run(answer.endpoint(head(path)))
    assert isinstance(answer, Respond)
    assert answer.status == status
    if status == 405:
        assert ("allow", "GET, HEAD") in answer.headers


def test_the_process_series_are_read_in_a_thread_and_joined_to_the_gateways() -> None:
    # /proc/self/fd lists every open descriptor (10k with 10k connections); reading it on the
    # event loop stalled every request in flight for the length of a scrape.
    metrics = GatewayMetrics(worker=2)
    metrics.observe(AppSlug("wiki"), 200, 0.01)
    assert not metrics.reads_proc
    assert "process_open_fds" not in scrape(metrics).body.decode()
    metrics.add_process()
    readers: list[str] = []
    process_exposition = metrics.process_exposition

    def spied() -> bytes:
        readers.append(threading.current_thread().name)
        return process_exposition()

    metrics.process_exposition = spied  # type: ignore[method-assign]
    text = scrape(metrics).body.decode()
    assert len(readers) == 1
    assert readers[0] != threading.main_thread().name
    assert 'lychgate_gateway_requests_total{app="wiki",status="200",worker="2"} 1.0' in text
    for series in ("process_open_fds ", "process_max_fds ", "process_start_time_seconds "):
        assert series in text
    assert text.count("# TYPE process_open_fds gauge") == 1


def test_hook_without_access_log_does_not_log(caplog: pytest.LogCaptureFixture) -> None:
    hook = response_hook(GatewayMetrics(), None)
    with caplog.at_level(logging.INFO, logger="lychgate.access"):
        hook(head(), AppSlug("wiki"), 200, 0.01, "", ADA, "a1")
    assert caplog.records == []


def test_gauges_are_read_at_scrape_time() -> None:
    metrics = GatewayMetrics(worker=3)
    state = {"conns": 5, "tunnels": 2}
    metrics.track(
        connections=lambda: state["conns"], tunnels=lambda: state["tunnels"], feed_age=lambda: None
    )
    state["conns"] = 7
    body = scrape(metrics).body.decode()
    assert 'lychgate_gateway_open_connections{worker="3"} 7.0' in body
    assert 'lychgate_gateway_open_tunnels{worker="3"} 2.0' in body
    assert 'lychgate_gateway_feed_age_seconds{worker="3"} -1.0' in body
    assert "tls_" not in body  # plain HTTP: no certificate, no expiry or handshake sample


def test_certificate_expiry_and_handshakes_are_read_at_scrape_time() -> None:
    metrics = GatewayMetrics(worker=0)
    expiry = {"at": 1_900_000_000.0}
    handshakes = [0]
    metrics.track(
        connections=lambda: 0,
        tunnels=lambda: 0,
        feed_age=lambda: 1.0,
        tls_not_after=lambda: expiry["at"],
        tls_handshakes=lambda: handshakes[0],
    )
    expiry["at"] = 1_950_000_000.0  # a renewal
    handshakes[0] = 4
    body = scrape(metrics).body.decode()
    assert 'lychgate_gateway_tls_not_after_timestamp_seconds{worker="0"} 1.95e+09' in body
    assert 'lychgate_gateway_tls_handshakes{worker="0"} 4.0' in body


def test_upstream_failures_are_read_at_scrape_time() -> None:
    metrics = GatewayMetrics(worker=1)
    counts: dict[tuple[AppSlug | None, str], int] = {}
    metrics.track(
        connections=lambda: 0,
        tunnels=lambda: 0,
        feed_age=lambda: 1.0,
        upstream_failures=lambda: counts,
    )
    counts[(AppSlug("wiki"), "connect")] = 2
    counts[(None, "read_timeout")] = 1
    body = scrape(metrics).body.decode()
    assert (
        'lychgate_gateway_upstream_failures_total{app="wiki",kind="connect",worker="1"} 2.0' in body
    )
    assert (
        'lychgate_gateway_upstream_failures_total{app="-",kind="read_timeout",worker="1"} 1.0'
        in (body)
    )


def test_proxy_header_refusals_are_read_at_scrape_time_and_only_when_on() -> None:
    metrics = GatewayMetrics(worker=2)
    counts: dict[str, int] = {}
    metrics.track(
        connections=lambda: 0,
        tunnels=lambda: 0,
        feed_age=lambda: 1.0,
        proxy_refusals=lambda: counts,
    )
    counts["untrusted_peer"] = 3
    counts["late"] = 1
    body = scrape(metrics).body.decode()
    assert (
        'lychgate_gateway_proxy_headers_refused_total{reason="untrusted_peer",worker="2"} 3.0'
        in (body)
    )
    assert 'lychgate_gateway_proxy_headers_refused_total{reason="late",worker="2"} 1.0' in body
    off = GatewayMetrics()
    off.track(connections=lambda: 0, tunnels=lambda: 0, feed_age=lambda: 1.0)
    assert "proxy_headers_refused" not in scrape(off).body.decode()


def test_metrics_listener_answers_only_metrics() -> None:
    handle = metrics_handler(GatewayMetrics())
    other = handle(head("/admin"))
    assert isinstance(other, Respond)
    assert other.status == 404


def test_redirect_listener_only_redirects_served_hosts() -> None:
    holder = SnapshotHolder()
    handle = redirect_handler(holder)
    no_snapshot = handle(head(host="auth.example.com"))
    assert isinstance(no_snapshot, Respond)
    assert no_snapshot.status == 404
    snap = World("subdomains").snapshot
    holder.replace(snap)
    ok = handle(head("/a/b", "q=1", host=snap.public_host.upper() + "."))
    assert isinstance(ok, Respond)
    assert ok.status == 308
    assert dict(ok.headers)["location"] == snap.public_origin + "/a/b?q=1"
    evil = handle(head(host="evil.example"))
    assert isinstance(evil, Respond)
    assert evil.status == 404
    for refused in (
        head("*", host=snap.public_host),  # OPTIONS *: nowhere to send it
        head(host=f"{snap.public_host}@evil.example"),
        head(host=f"{snap.public_host} x"),
        # An absolute-form target names the host (RFC 9112 3.2.2): one that disagrees with
        # Host was redirected by Host, where the https listener refuses it.
        replace(head("/x", host=snap.public_host), target="http://evil.example/x"),
    ):
        answer = handle(refused)
        assert isinstance(answer, Respond)
        assert answer.status == 404
    same = handle(replace(head("/x", host=snap.public_host), target=f"http://{snap.public_host}/x"))
    assert isinstance(same, Respond)
    assert (same.status, dict(same.headers)["location"]) == (308, snap.public_origin + "/x")


def test_redirect_listener_serves_an_ipv6_public_host() -> None:
    snap = World("single-host").changed(public_url="https://[2001:db8::1]:8443")
    holder = SnapshotHolder()
    holder.replace(snap)
    moved = redirect_handler(holder)(head("/p", host="[2001:DB8::1]:80"))
    assert isinstance(moved, Respond)
    assert (moved.status, dict(moved.headers)["location"]) == (308, "https://[2001:db8::1]:8443/p")


def test_engine_limits_follow_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        {"LYCHGATE_LIMITS__HEADER_TIMEOUT": "2.5", "LYCHGATE_LIMITS__TUNNEL_IDLE_TIMEOUT": "90"},
    )
    assert engine_limits(settings).header_timeout == 2.5
    assert engine_limits(settings).tunnel_idle_timeout == 90
    assert engine_limits(settings).max_headers == settings.limits.max_headers


def test_latency_histogram_counts_each_response_in_its_bucket() -> None:
    metrics = GatewayMetrics(worker=1)
    for seconds in (0.0001, 0.001, 0.001, 0.02, 45.0):  # 0.001 is a bound: counted in "le 0.001"
        metrics.observe(AppSlug("wiki"), 200, seconds)
    metrics.observe(AppSlug("wiki"), 502, 0.3)
    text = scrape(metrics).body.decode()
    bucket = 'lychgate_gateway_request_duration_seconds_bucket{app="wiki",le="%s",worker="1"} %s'
    for le, count in [("0.0005", "1.0"), ("0.001", "3.0"), ("0.025", "4.0"), ("0.5", "5.0")]:
        assert bucket % (le, count) in text
    assert bucket % ("30.0", "5.0") in text
    assert bucket % ("+Inf", "6.0") in text
    assert 'lychgate_gateway_request_duration_seconds_count{app="wiki",worker="1"} 6.0' in text
    assert 'lychgate_gateway_requests_total{app="wiki",status="502",worker="1"} 1.0' in text
    assert 'lychgate_gateway_requests_total{app="wiki",status="200",worker="1"} 5.0' in text


def ended(seconds: float, why: str, sent: int, received: int) -> TunnelEnded:
    """Ada's WebSocket to ``chat`` has ended."""
    return TunnelEnded(head("/chat"), AppSlug("chat"), seconds, why, ADA, sent, received)


def test_a_tunnels_end_is_its_own_record(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lychgate.access"):
        AccessLog().tunnel_end(ended(61.5, "session ended", 10, 20))
    [line] = [r.getMessage() for r in caplog.records if r.name == "lychgate.access"]
    record = json.loads(line)
    assert record["status"] == 101
    assert record["event"] == "tunnel_end"
    assert record["ms"] == 61500.0
    assert (record["bytes_in"], record["bytes_out"]) == (10, 20)
    assert record["reason"] == "session ended"
    assert (record["path"], record["user"]) == ("/chat", "u_ada")
    plain = json.loads(access_line(head(), None, 200, 0.0, now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert "event" not in plain
    assert "bytes_in" not in plain


@pytest.mark.parametrize("logging_on", [True, False])
def test_tunnel_ends_are_counted_by_reason_and_logged_when_on(
    caplog: pytest.LogCaptureFixture, logging_on: bool
) -> None:
    metrics = GatewayMetrics()
    end = tunnel_end_hook(metrics, AccessLog() if logging_on else None)
    with caplog.at_level(logging.INFO, logger="lychgate.access"):
        end(ended(3.0, "session ended", 1, 2))
        end(ended(4.0, "session ended", 1, 2))
        end(ended(5.0, "client closed", 1, 2))
    assert len(caplog.records) == (3 if logging_on else 0)
    text = scrape(metrics).body.decode()
    closed = "lychgate_gateway_tunnels_closed_total"
    assert f'{closed}{{app="chat",reason="session ended",worker="0"}} 2.0' in text
    assert f'{closed}{{app="chat",reason="client closed",worker="0"}} 1.0' in text


class BrokenPipe(io.StringIO):
    """stdout after its reader went away (``lychgate gateway | head``): every write fails."""

    name = "<stdout>"

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def access_record(n: int) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "lychgate.access", "msg": f'{{"n":{n}}}'})


def test_the_access_log_writes_one_line_a_record() -> None:
    stream = io.StringIO()
    handler = AccessLogHandler(stream)
    handler.handle(access_record(1))
    handler.handle(access_record(2))
    assert stream.getvalue() == '{"n":1}\n{"n":2}\n'


def test_a_broken_pipe_stops_the_access_log_with_one_warning(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = BrokenPipe()
    handler = AccessLogHandler(stream)
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.accesslog"):
        for n in range(3):
            handler.handle(access_record(n))  # never raises: the request is served anyway
    assert handler.stopped
    assert stream.writes == 1  # the records after the failure are dropped, not tried
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "access log stopped: cannot write to <stdout> (Broken pipe); requests are still served",
        )
    ]
    assert capsys.readouterr().err == ""  # no "--- Logging error ---" traceback
