"""wrk's report parsed into numbers (bench/wrk.py)."""

from __future__ import annotations

import pytest

from bench.wrk import WrkError, parse_wrk, wrk_argv

FULL = """\
Running 10s test @ http://127.0.0.1:8080/small
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  12.34ms   89.00%
    Req/Sec    40.12k     2.34k   45.00k    70.00%
  Latency Distribution
     50%  805.00us
     75%    1.00ms
     90%    1.48ms
     99%    1.20s
  401234 requests in 10.00s, 50.12MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  40123.40
Transfer/sec:      5.01MB
"""

CLEAN = """\
Running 3s test @ http://127.0.0.1:8080/1mb
  1 threads and 10 connections
  Latency Distribution
     50%    9.96ms
     75%   12.00ms
     90%   20.00ms
     99%   98.53ms
  2072 requests in 3.00s, 2.02GB read
Requests/sec:    690.45
Transfer/sec:    690.62MB
"""


def test_latency_percentiles_are_converted_to_milliseconds() -> None:
    r = parse_wrk(FULL)
    assert r.p50_ms == pytest.approx(0.805)
    assert r.p75_ms == pytest.approx(1.0)
    assert r.p90_ms == pytest.approx(1.48)
    assert r.p99_ms == pytest.approx(1200.0)


def test_rates_counts_and_errors() -> None:
    r = parse_wrk(FULL)
    assert r.requests == 401234
    assert r.requests_per_s == pytest.approx(40123.40)
    assert r.transfer_per_s == pytest.approx(5.01 * 1024 * 1024)
    assert r.socket_errors == 6  # connect + read + write
    assert r.timeouts == 4
    assert r.non_2xx == 5


def test_a_clean_run_has_no_errors_and_binary_units() -> None:
    r = parse_wrk(CLEAN)
    assert (r.socket_errors, r.timeouts, r.non_2xx) == (0, 0, 0)
    assert r.transfer_per_s == pytest.approx(690.62 * (1 << 20))
    assert r.p99_ms == pytest.approx(98.53)


def test_missing_percentiles_are_none() -> None:
    text = "\n".join(line for line in CLEAN.splitlines() if "%" not in line)
    r = parse_wrk(text)
    assert r.p50_ms is None
    assert r.p99_ms is None
    assert r.requests == 2072


@pytest.mark.parametrize(
    "text",
    ["", "unable to connect to 127.0.0.1:1 Connection refused", FULL.replace("Requests/sec", "")],
)
def test_output_without_a_summary_is_an_error(text: str) -> None:
    with pytest.raises(WrkError):
        parse_wrk(text)


def test_argv_carries_latency_duration_and_headers() -> None:
    argv = wrk_argv(
        "http://127.0.0.1:1/small", duration_s=2.6, connections=50, headers={"Cookie": "a=b"}
    )
    assert argv[:4] == ["wrk", "-t1", "-c50", "-d3s"]
    assert "--latency" in argv
    assert argv[-3:] == ["-H", "Cookie: a=b", "http://127.0.0.1:1/small"]
