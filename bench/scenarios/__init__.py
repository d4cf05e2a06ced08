"""The load patterns, in the order they run and are reported."""

from __future__ import annotations

from bench.scenarios.base import Scenario
from bench.scenarios.download import DOWNLOAD
from bench.scenarios.idle import IDLE
from bench.scenarios.upload import UPLOAD
from bench.scenarios.websocket import WEBSOCKET
from bench.scenarios.wrk_get import LARGE_GET, SMALL_GET

SCENARIOS: tuple[Scenario, ...] = (SMALL_GET, LARGE_GET, UPLOAD, DOWNLOAD, IDLE, WEBSOCKET)
