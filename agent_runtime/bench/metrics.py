"""What one simulated call measured, and percentiles over many calls."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from agent_runtime.sim.script import CallResult

TICK_MS = 20.0
UNDERRUN_MAX_TICKS = 25  # a dry buffer refilled within 0.5 s is a gap inside a reply, not a pause


@dataclass(slots=True)
class CallSample:
    """The figures of one call; `errors` names each protocol problem seen (empty when clean)."""

    turn_ms: list[float] = field(default_factory=list)  # caller's last speech frame → first agent audio
    barge_in_ms: list[float] = field(default_factory=list)  # caller's speech onset → `clear` (media time)
    connect_to_greeting_ms: float | None = None  # call-connect POST → first greeting audio
    start_to_greeting_ms: float | None = None  # `start` sent → first greeting audio
    duration_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


def sample_from(result: CallResult, began: float, ended: float, expected_turns: int, expected_clears: int) -> CallSample:
    """Reads one call's CallResult. `began`/`ended` are event-loop times around place_call."""
    sample = CallSample(duration_s=ended - began)
    sample.turn_ms = list(result.turn_latencies_ms)
    if result.greeting_latency_ms is not None:
        sample.start_to_greeting_ms = result.greeting_latency_ms
        sample.connect_to_greeting_ms = (result.started_at - began) * 1000.0 + result.greeting_latency_ms
    clears = result.clear_ticks()
    for onset in result.speech_onset_ticks[1:]:  # the first utterance waits for silence: no barge-in
        after = [tick for tick in clears if tick >= onset]
        if after:
            sample.barge_in_ms.append((after[0] - onset) * TICK_MS)
    errors = sample.errors
    if not result.hung_up:
        errors["not_hung_up"] += 1  # the agent closed, or the call hit its time limit
    if result.close_code not in (None, 1000):
        errors["unexpected_close"] += 1
    if result.unexpected_messages:
        errors["unexpected_message"] += len(result.unexpected_messages)
    if result.marks_sent != result.marks_echoed:
        errors["missing_marks"] += abs(result.marks_sent - result.marks_echoed)
    if len(clears) != expected_clears:
        errors["clear_count"] += 1
    if len(sample.turn_ms) != expected_turns:
        errors["missing_reply"] += 1
    if result.greeting_latency_ms is None:
        errors["no_greeting"] += 1
    late, underruns = _late_marks_and_underruns(result)
    if late:
        errors["late_marks"] += late
    if underruns:
        errors["audio_underruns"] += underruns
    return sample


def _late_marks_and_underruns(result: CallResult) -> tuple[int, int]:
    """Late mark: it arrived a tick or more after the audio it follows (the server fell behind).
    Underrun: the carrier's buffer ran dry inside a reply (refilled within 0.5 s, no `clear`)."""
    late = underruns = 0
    last_media_tick: int | None = None
    level = 0  # bytes queued at the simulated carrier, advanced one 160-byte frame per tick
    clock = 0
    dry_since: int | None = None
    for tick, kind, detail in result.timeline:
        if tick > clock:
            if level > 0 and level <= 160 * (tick - clock):
                dry_since = clock + -(-level // 160)  # the tick the last queued frame played
            level = max(0, level - 160 * (tick - clock))
            clock = tick
        if kind == "media":
            if dry_since is not None and 0 < tick - dry_since <= UNDERRUN_MAX_TICKS:
                underruns += 1
            dry_since = None
            level += int(detail)
            last_media_tick = tick
        elif kind == "mark":
            if last_media_tick is not None and tick - last_media_tick > 1:
                late += 1
            last_media_tick = None
        elif kind == "clear":
            level = 0
            dry_since = None
            clock = tick
    return late, underruns


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max/mean (nearest-rank on the sorted values) and the count."""
    clean = sorted(v for v in values if math.isfinite(v))
    if not clean:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}

    def rank(p: float) -> float:
        return round(clean[min(len(clean) - 1, max(0, math.ceil(p / 100.0 * len(clean)) - 1))], 2)

    return {"count": len(clean), "p50": rank(50), "p95": rank(95), "p99": rank(99),
            "max": round(clean[-1], 2), "mean": round(sum(clean) / len(clean), 2)}
