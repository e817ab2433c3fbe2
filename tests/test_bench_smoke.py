"""The benchmark harness end to end at N=2: a real server process, real sockets, sane figures.

Figures are never asserted against targets here (the machine is shared); only that the
harness works, the JSON has its fields, the numbers are finite and non-negative, and the
calls saw no protocol errors.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from agent_runtime.bench.runner import add_arguments, run

PERCENTILE_FIELDS = ("turn_latency_ms", "turn_overhead_ms", "barge_in_ms", "connect_to_greeting_ms")
SCALAR_FIELDS = ("server_cpu_ms_per_call_s", "server_core_utilisation", "client_core_utilisation",
                 "server_rss_base_mb", "server_rss_peak_mb", "server_rss_per_call_mb", "wall_s", "call_seconds")


def test_bench_two_calls(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--calls", "2", "--out", str(tmp_path), "--no-plots", "--no-pin", "--quiet", "--max-run-s", "90"])
    run(args)

    document = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.md").read_text().count("\n") == 3  # header, rule, one row
    [level] = document["levels"]
    assert level["calls"] == 2 and level["calls_completed"] == 2
    assert level["errors_total"] == 0, level["errors"]
    assert level["turn_latency_ms"]["count"] == 4  # two turns per call: the question and the barge-in
    assert level["barge_in_ms"]["count"] == 2
    for key in PERCENTILE_FIELDS:
        for p in ("p50", "p95", "p99"):
            value = level[key][p]
            assert isinstance(value, float) and math.isfinite(value), (key, p, value)
            # Overhead is a difference of clocks: a millisecond or two below zero is timer jitter.
            assert value >= (-20.0 if key == "turn_overhead_ms" else 0.0), (key, p, value)
    for key in SCALAR_FIELDS:
        assert math.isfinite(level[key]) and level[key] >= 0.0, (key, level[key])
    assert level["server_rss_peak_mb"] > 0.0
