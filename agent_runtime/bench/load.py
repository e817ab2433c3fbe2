"""One load level: N staggered simulated calls against the server process, then its summary."""

from __future__ import annotations

import gc
import resource
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np

from agent_runtime.audio.vad import SpeechEnd, VadOptions, VoiceActivityDetector
from agent_runtime.audio.wav import read_wav_mono
from agent_runtime.bench.metrics import CallSample, percentiles, sample_from
from agent_runtime.bench.server import ServerProcess
from agent_runtime.sim.caller import CallScript, Utterance, _scaled, _voiced_range, place_call

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CALLER_WAV = REPO / "tests" / "data" / "librivox_ss_0880.wav"
DEFAULT_BARGE_WAV = REPO / "tests" / "data" / "librivox_ss_0870.wav"
EXPECTED_TURNS = 2  # the agent answers the first utterance and the barge-in
EXPECTED_CLEARS = 1  # exactly one `clear`, for the barge-in


@dataclass(frozen=True, slots=True)
class ScriptOptions:
    caller_wav: Path = DEFAULT_CALLER_WAV
    barge_wav: Path = DEFAULT_BARGE_WAV
    barge_in_after_s: float = 1.0  # into the agent's reply
    barge_length_s: float = 1.5
    hangup_after_s: float = 1.0
    max_call_s: float = 45.0


def build_script(options: ScriptOptions) -> CallScript:
    """Greeting, a real utterance, the reply, a barge-in over it, its reply, hang-up."""
    for path in (options.caller_wav, options.barge_wav):
        if not path.is_file():
            raise FileNotFoundError(f"caller audio {path} not found; pass --caller-wav/--barge-wav (8 kHz-able WAV)")
    caller, _ = read_wav_mono(options.caller_wav, 8000)
    barge, _ = read_wav_mono(options.barge_wav, 8000)
    barge = barge[int(0.3 * 8000) : int((0.3 + options.barge_length_s) * 8000)]
    return CallScript(
        utterances=[Utterance(caller), Utterance(barge, barge_in_after_s=options.barge_in_after_s)],
        hangup_after_s=options.hangup_after_s, max_duration_s=options.max_call_s, reply_timeout_s=15.0,
    )


def vad_end_offsets_ms(script: CallScript, vad_options: VadOptions) -> list[float]:
    """Per utterance: where the server's VAD puts the end of speech, minus where the simulator does.

    The simulator times a turn from its own last voiced frame (a level threshold); the server's
    hangover starts after the VAD's last voiced frame. The VAD is deterministic, so running it here
    on the same audio (after silence, as on the call) gives the exact difference to subtract.
    """
    offsets = []
    for utterance in script.utterances:
        audio = _scaled(utterance)
        sim_end_ms = (_voiced_range(audio)[1] + 1) * 20.0
        vad = VoiceActivityDetector(8000, vad_options)
        lead = np.zeros(8000, np.int16)
        padded = np.concatenate([lead, audio, np.zeros(vad_options.hangover_ms * 8 + 1600, np.int16)])
        ends = [e.at_ms for i in range(0, len(padded), 160) for e in vad.push(padded[i : i + 160]) if isinstance(e, SpeechEnd)]
        offsets.append(ends[-1] - 1000.0 - sim_end_ms if ends else 0.0)
    return offsets


@dataclass(slots=True)
class _Progress:
    started: int = 0
    active: int = 0
    done: int = 0
    peak_active: int = 0
    failures: Counter[str] = field(default_factory=Counter)


async def run_level(server: ServerProcess, n: int, script: CallScript, stagger_s: float,
                    expected_ms: list[float], deadline_s: float, quiet: bool = False) -> dict[str, Any]:
    """Places `n` calls, `stagger_s` apart, all bounded by `deadline_s`; returns the level's figures.

    `expected_ms[i]`: the turn latency of utterance i with zero runtime overhead (hangover + VAD offset).
    """
    samples: list[CallSample] = []
    progress = _Progress()
    rss_base = server.rss_mb()
    rss_peak = rss_base
    cpu0, rusage0, t0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF), anyio.current_time()
    wait0 = server.runqueue_wait_s()

    async def one_call() -> None:
        progress.started += 1
        progress.active += 1
        progress.peak_active = max(progress.peak_active, progress.active)
        began = anyio.current_time()
        try:
            result = await place_call(server.connect_url, script, server.secret, http)
        except Exception as exc:  # a failed call is a finding, not a crash of the benchmark
            progress.failures[f"exception:{type(exc).__name__}"] += 1
        else:
            samples.append(sample_from(result, began, anyio.current_time(), EXPECTED_TURNS, EXPECTED_CLEARS))
        finally:
            progress.active -= 1
            progress.done += 1

    async def watch() -> None:
        nonlocal rss_peak
        last_print = anyio.current_time()
        while True:
            await anyio.sleep(0.25)
            rss_peak = max(rss_peak, server.rss_mb())
            now = anyio.current_time()
            if not quiet and now - last_print >= 2.0:
                last_print = now
                util = (server.cpu_seconds() - cpu0) / (now - t0)
                errors = sum(progress.failures.values()) + sum(sum(s.errors.values()) for s in samples)
                print(f"  N={n:<4} t={now - t0:5.1f}s started {progress.started}/{n} active {progress.active:<4} "
                      f"done {progress.done:<4} errors {errors:<3} server CPU {util:4.0%}", file=sys.stderr, flush=True)

    lags: list[float] = []

    async def probe_lag() -> None:
        # The load client's own event-loop lag: a late client sends frames late, which would show
        # up as server latency; this tells the two apart.
        while True:
            before = anyio.current_time()
            await anyio.sleep(0.01)
            lags.append((anyio.current_time() - before - 0.01) * 1000.0)

    # One HTTP client for every call-connect POST; the load client's GC is off during the level so
    # its own pauses never show up as server latency (collected right after).
    gc.disable()
    try:
        async with httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=None)) as http:
            with anyio.move_on_after(deadline_s) as scope:
                await _calls(n, stagger_s, one_call, watch, probe_lag)
    finally:
        gc.enable()
        gc.collect()

    wall = anyio.current_time() - t0
    cpu = server.cpu_seconds() - cpu0
    rusage1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (rusage1.ru_utime + rusage1.ru_stime) - (rusage0.ru_utime + rusage0.ru_stime)
    rss_peak = max(rss_peak, server.rss_mb())
    if scope.cancelled_caught:  # calls cut off (or never started) by the level's deadline
        progress.failures["timeout"] += n - len(samples) - sum(progress.failures.values())
    level = summarise(n, samples, progress, expected_ms, wall, cpu, client_cpu, rss_base, rss_peak)
    level["client_loop_lag_ms"] = percentiles(lags)
    level["server_runqueue_wait_ms"] = round((server.runqueue_wait_s() - wait0) * 1000.0, 1)
    return level


async def _calls(n: int, stagger_s: float, one_call: Callable[[], Awaitable[None]], *helpers: Callable[[], Awaitable[None]]) -> None:
    async with anyio.create_task_group() as tg:
        for helper in helpers:
            tg.start_soon(helper)
        async with anyio.create_task_group() as calls:
            for _ in range(n):
                calls.start_soon(one_call)
                await anyio.sleep(stagger_s)
        tg.cancel_scope.cancel()  # the helpers (progress watcher, lag probe) run until the calls end


def summarise(n: int, samples: list[CallSample], progress: _Progress, expected_ms: list[float], wall: float,
              cpu: float, client_cpu: float, rss_base: float, rss_peak: float) -> dict[str, Any]:
    turns = [v for s in samples for v in s.turn_ms]
    errors: Counter[str] = Counter(progress.failures)
    for s in samples:
        errors.update(s.errors)
    call_seconds = sum(s.duration_s for s in samples) or float("nan")
    return {
        "calls": n,
        "calls_completed": len(samples),
        "peak_concurrent_calls": progress.peak_active,
        "wall_s": round(wall, 2),
        "call_seconds": round(call_seconds, 1),
        "turn_latency_ms": percentiles(turns),
        "turn_overhead_ms": percentiles([v - expected_ms[i] for s in samples for i, v in enumerate(s.turn_ms)
                                         if i < len(expected_ms)]),
        "barge_in_ms": percentiles([v for s in samples for v in s.barge_in_ms]),
        "connect_to_greeting_ms": percentiles([s.connect_to_greeting_ms for s in samples if s.connect_to_greeting_ms is not None]),
        "start_to_greeting_ms": percentiles([s.start_to_greeting_ms for s in samples if s.start_to_greeting_ms is not None]),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_call_s": round(cpu * 1000.0 / call_seconds, 3),
        "server_core_utilisation": round(cpu / wall, 3),
        "client_core_utilisation": round(client_cpu / wall, 3),
        "server_rss_base_mb": round(rss_base, 1),
        "server_rss_peak_mb": round(rss_peak, 1),
        "server_rss_per_call_mb": round((rss_peak - rss_base) / max(1, progress.peak_active), 3),
        "errors": dict(sorted(errors.items())),
        "errors_total": sum(errors.values()),
    }
