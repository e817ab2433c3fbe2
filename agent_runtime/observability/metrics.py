"""Prometheus metrics for one Runtime: its own CollectorRegistry, never the global one.

Turn stages are observed once per turn and call totals once per call; nothing here runs per
frame. Live state (active calls, calls ended) is read from the runtime when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds from the caller's end of speech (the stream's start, for a greeting) to each stage.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class _LiveState(Collector):
    """Values the runtime already keeps, read at scrape time (no second copy to keep in step)."""

    def __init__(self, active_calls: Callable[[], int], calls_ended: Callable[[], int]) -> None:
        self._active_calls = active_calls
        self._calls_ended = calls_ended

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("agent_runtime_active_calls", "Calls in progress.", value=self._active_calls())
        yield CounterMetricFamily("agent_runtime_calls_ended", "Calls that have ended.", value=self._calls_ended())


class RuntimeMetrics:
    def __init__(self, active_calls: Callable[[], int], calls_ended: Callable[[], int]) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        registry.register(_LiveState(active_calls, calls_ended))
        self.turn_stage = Histogram(
            "agent_runtime_turn_stage_seconds",
            "Time from the caller's end of speech (stream start for the greeting) to each stage of a turn.",
            ["stage", "kind"], buckets=STAGE_BUCKETS, registry=registry,
        )
        self.turns = Counter("agent_runtime_turns", "Agent turns spoken.", ["kind", "interrupted"], registry=registry)
        self.malformed_frames = Counter("agent_runtime_malformed_frames", "Media-stream frames skipped as malformed (counted at call end).", registry=registry)
        self.barge_ins = Counter("agent_runtime_barge_ins", "Times a caller interrupted the agent (counted at call end).", registry=registry)
        self.greeting_cache = Counter("agent_runtime_greeting_cache", "Greetings played from the audio cache or synthesised.", ["result"], registry=registry)
        self.recordings = Counter("agent_runtime_recordings", "Call recordings written.", ["result"], registry=registry)

    def observe_turn(self, kind: str, interrupted: bool, stages_ms: Mapping[str, float]) -> None:
        for stage, ms in stages_ms.items():
            if stage != "end_of_speech":  # always 0: the origin of the others
                self.turn_stage.labels(stage, kind).observe(ms / 1000.0)
        self.turns.labels(kind, "true" if interrupted else "false").inc()

    def observe_call(self, malformed_frames: int, barge_ins: int) -> None:
        if malformed_frames:
            self.malformed_frames.inc(malformed_frames)
        if barge_ins:
            self.barge_ins.inc(barge_ins)

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type, for `/metrics`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
