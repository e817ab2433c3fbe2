"""Benchmark output: the JSON document, a markdown table and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(value: float | int | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratios(levels: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each level against the first (N=1 by default): ratios are what carries between machines."""
    if not levels:
        return {}
    base = levels[0]

    def ratio(level: dict[str, Any], *path: str) -> float | None:
        a, b = level, base
        for key in path:
            a, b = a[key], b[key]
        return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

    return {
        str(level["calls"]): {
            "turn_latency_p99_ratio": ratio(level, "turn_latency_ms", "p99"),
            "turn_overhead_p99_minus_base_ms": (
                round(level["turn_overhead_ms"]["p99"] - base["turn_overhead_ms"]["p99"], 2)
                if level["turn_overhead_ms"]["p99"] is not None and base["turn_overhead_ms"]["p99"] is not None else None
            ),
            "barge_in_p99_ratio": ratio(level, "barge_in_ms", "p99"),
            "cpu_per_call_ratio": ratio(level, "server_cpu_ms_per_call_s"),
        }
        for level in levels
    }


def markdown_table(levels: list[dict[str, Any]]) -> str:
    head = ("| N | turn p50 | turn p95 | turn p99 | overhead p99 | barge-in p50 | barge-in p99 | connect→greeting p50 / p99 "
            "| server CPU per call | server core | server waited for CPU | RSS per call | peak RSS | errors |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = []
    for lv in levels:
        t, o, b, g = lv["turn_latency_ms"], lv["turn_overhead_ms"], lv["barge_in_ms"], lv["connect_to_greeting_ms"]
        rows.append(
            f"| {lv['calls']} | {_fmt(t['p50'])} ms | {_fmt(t['p95'])} ms | {_fmt(t['p99'])} ms | {_fmt(o['p99'], 1)} ms "
            f"| {_fmt(b['p50'])} ms | {_fmt(b['p99'])} ms | {_fmt(g['p50'])} / {_fmt(g['p99'])} ms "
            f"| {_fmt(lv['server_cpu_ms_per_call_s'], 2)} ms/s | {lv['server_core_utilisation'] * 100:.0f}% "
            f"| {_fmt(lv.get('server_runqueue_wait_ms'))} ms "
            f"| {_fmt(lv['server_rss_per_call_mb'], 2)} MB | {_fmt(lv['server_rss_peak_mb'])} MB | {lv['errors_total']} |"
        )
    return head + "\n".join(rows) + "\n"


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_plots(levels: list[dict[str, Any]], out_dir: Path, stem: str) -> list[Path]:
    """latency vs N and CPU/memory vs N; needs matplotlib (pip install 'agent_runtime[bench]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    ns = [lv["calls"] for lv in levels]

    def series(key: str, p: str) -> list[float]:
        return [lv[key][p] if lv[key][p] is not None else float("nan") for lv in levels]

    paths = []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for p, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^-")):
        left.plot(ns, series("turn_overhead_ms", p), style, label=f"turn overhead {p}")
    left.axhline(15, color="grey", lw=0.8, ls=":", label="goal p99 15 ms")
    left.set(xlabel="concurrent calls", ylabel="ms", title="Turn overhead (latency − hangover)")
    left.legend(fontsize=8)
    for p, style in (("p50", "o-"), ("p99", "^-")):
        right.plot(ns, series("barge_in_ms", p), style, label=f"barge-in {p}")
        right.plot(ns, series("connect_to_greeting_ms", p), style, alpha=0.6, label=f"connect→greeting {p}")
    right.axhline(150, color="grey", lw=0.8, ls=":", label="barge-in goal p99 150 ms")
    right.set(xlabel="concurrent calls", ylabel="ms", title="Barge-in → clear; connect → greeting")
    right.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_latency.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(ns, [lv["server_cpu_ms_per_call_s"] for lv in levels], "o-", label="server CPU per call (ms/s)")
    left.set(xlabel="concurrent calls", ylabel="ms CPU per call-second", title="Server CPU per call")
    twin = left.twinx()
    twin.plot(ns, [lv["server_core_utilisation"] * 100 for lv in levels], "s--", color="tab:red", label="server core %")
    twin.plot(ns, [lv["client_core_utilisation"] * 100 for lv in levels], "^:", color="tab:green", label="client core %")
    twin.set_ylabel("% of one core")
    left.legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    right.plot(ns, [lv["server_rss_peak_mb"] for lv in levels], "o-", label="peak RSS (MB)")
    right.plot(ns, [lv["server_rss_base_mb"] for lv in levels], "s--", label="idle RSS (MB)")
    right.set(xlabel="concurrent calls", ylabel="MB", title="Server memory")
    right.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_cpu.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths
