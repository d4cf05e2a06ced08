"""Benchmark harness: Lychgate against nginx and Caddy on loopback.

Run it as ``python -m bench`` from the repository root (``make bench``). Every server runs on
127.0.0.1 on a port checked free, one configuration at a time, and is stopped at the end.
"""
