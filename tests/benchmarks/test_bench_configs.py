"""The bench's configs: keys the CLI accepts, one baseline, and which scenarios each runs."""

from __future__ import annotations

from pathlib import Path

from bench.report import BASELINE
from bench.runner import all_configs
from bench.scenarios import SCENARIOS


def test_keys_are_unique_and_one_config_is_the_baseline(tmp_path: Path) -> None:
    configs = all_configs(tmp_path, 2)
    keys = [c.key for c in configs]
    assert len(keys) == len(set(keys))
    assert [c.key for c in configs if c.name == BASELINE] == ["nginx-auth"]
    assert {"nginx-auth-hop", "relay", "relay-headers", "engine"} <= set(keys)


def test_the_diagnostic_rows_run_the_small_get_only(tmp_path: Path) -> None:
    for config in all_configs(tmp_path, 2):
        ran = {s.key for s in SCENARIOS if config.runs(s)}
        if config.key in ("relay-headers", "engine"):
            assert ran == {"small_get"}
        else:
            assert ran == {s.key for s in SCENARIOS}
