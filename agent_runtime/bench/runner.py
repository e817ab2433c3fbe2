"""`agent-runtime bench`: for each N, a fresh server process, N calls, one row of figures."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_CALLS = "1,10,50,100,150,200"  # sized for a 2-core machine: one core serves, one loads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", default=DEFAULT_CALLS, help=f"concurrent call counts, comma-separated (default {DEFAULT_CALLS})")
    parser.add_argument("--stagger-ms", type=float, default=None,
                        help="time between call starts (default: 50 ms, or less so the ramp stays under 6 s)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results if present, else ./bench_results)")
    parser.add_argument("--stem", default="bench", help="file name stem for the JSON, markdown and PNGs")
    parser.add_argument("--server-core", type=int, default=None, help="CPU the server is pinned to (default: the last one)")
    parser.add_argument("--client-core", type=int, default=None, help="CPU the load client is pinned to (default: 0)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server or client to cores")
    parser.add_argument("--max-run-s", type=float, default=900.0, help="the whole run stops after this long")
    parser.add_argument("--caller-wav", default=None, help="the caller's first utterance (default tests/data/librivox_ss_0880.wav)")
    parser.add_argument("--barge-wav", default=None, help="speech for the barge-in (default tests/data/librivox_ss_0870.wav)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs (no matplotlib needed)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server process (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _pinning(args: argparse.Namespace) -> tuple[int | None, int | None]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.no_pin or len(cores) < 2 or not Path("/usr/bin/taskset").exists():
        return None, None
    server = args.server_core if args.server_core is not None else cores[-1]
    client = args.client_core if args.client_core is not None else cores[0]
    return server, client


def _meta(args: argparse.Namespace, server_core: int | None, client_core: int | None, hangover_ms: float) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit, "python": platform.python_version(), "cpu": model, "cpus": os.cpu_count(),
        "server_core": server_core, "client_core": client_core,
        "engines": "stand-in STT/LLM/TTS (zero latency; TTS 24 kHz real speech)",
        "hangover_ms": hangover_ms,
        "script": "greeting; librivox_ss_0880 (3.0 s); reply; barge-in (1.5 s of librivox_ss_0870) 1.0 s into "
                  "the reply; its reply; hang-up 1 s after it played",
        "latency_clock": "turn: wall time at the simulator, last voiced frame sent → first agent media received; "
                         "barge-in: media time (20 ms ticks), first voiced frame → clear received",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from agent_runtime.audio.vad import VadOptions
    from agent_runtime.bench.load import ScriptOptions, build_script, run_level, vad_end_offsets_ms
    from agent_runtime.bench.report import markdown_table, ratios, write_json, write_plots
    from agent_runtime.bench.server import ServerProcess

    counts = [int(c) for c in str(args.calls).split(",") if c.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit("--calls needs positive integers, e.g. 1,10,50")
    out = Path(args.out) if args.out else (Path("benchmarks/results") if Path("benchmarks").is_dir() else Path("bench_results"))
    out.mkdir(parents=True, exist_ok=True)
    options = ScriptOptions(**{k: Path(v) for k, v in (("caller_wav", args.caller_wav), ("barge_wav", args.barge_wav)) if v})
    script = build_script(options)
    vad_options = VadOptions.telephony()  # the default agent's (Agent.vad)
    hangover_ms = float(vad_options.hangover_ms)
    expected_ms = [hangover_ms + offset for offset in vad_end_offsets_ms(script, vad_options)]
    server_core, client_core = _pinning(args)
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})  # the load client; the server gets its own core
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    log_dir = Path(tempfile.mkdtemp(prefix="agent_runtime_bench_logs_"))
    document: dict[str, Any] = {"meta": _meta(args, server_core, client_core, hangover_ms), "levels": []}
    document["meta"]["zero_overhead_turn_ms"] = expected_ms  # per utterance: hangover + VAD-vs-simulator end offset
    levels: list[dict[str, Any]] = document["levels"]

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    async def main() -> None:
        with anyio.move_on_after(args.max_run_s) as overall:
            for n in counts:
                stagger_s = args.stagger_ms / 1000.0 if args.stagger_ms is not None else min(0.05, 6.0 / n)
                server = ServerProcess(max_calls=n + 10, core=server_core, log_path=log_dir / f"server_{n}.log",
                                       extra_env=extra_env)
                await anyio.to_thread.run_sync(server.start)
                try:
                    await anyio.sleep(1.0)  # let warm-up and start-up allocations settle before the baseline
                    say(f"N={n}: server pid {server.pid} on core {server_core}, stagger {stagger_s * 1000:.0f} ms")
                    deadline = stagger_s * n + options.max_call_s + 20.0
                    level = await run_level(server, n, script, stagger_s, expected_ms, deadline, args.quiet)
                finally:
                    await anyio.to_thread.run_sync(server.stop)
                level["stagger_ms"] = round(stagger_s * 1000.0, 1)
                levels.append(level)
                o, b = level["turn_overhead_ms"], level["barge_in_ms"]
                say(f"N={n}: overhead p50/p99 {o['p50']}/{o['p99']} ms, barge-in p99 {b['p99']} ms, "
                    f"CPU {level['server_cpu_ms_per_call_s']} ms per call-s, errors {level['errors_total']} {level['errors']}")
        if overall.cancelled_caught:
            document["meta"]["stopped_early"] = f"--max-run-s {args.max_run_s} reached"

    backend_options = {"use_uvloop": True} if sys.platform != "win32" else {}
    anyio.run(main, backend="asyncio", backend_options=backend_options)
    document["ratios_vs_first"] = ratios(levels)
    write_json(out / f"{args.stem}.json", document)
    (out / f"{args.stem}.md").write_text(markdown_table(levels))
    plots = [] if args.no_plots else write_plots(levels, out, args.stem)
    say(markdown_table(levels))
    say(f"wrote {out / (args.stem + '.json')}, {out / (args.stem + '.md')}" + "".join(f", {p}" for p in plots)
        + f"; server logs in {log_dir}")
    return document


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agent-runtime bench", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args(argv))
