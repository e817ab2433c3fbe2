"""Observability: per-turn stage times out to Prometheus metrics, the turn log and (optionally) OTel spans.

`metrics.py` keeps the per-Runtime Prometheus registry, `logs.py` the logging set-up and the
turn log line, `traces.py` the optional OpenTelemetry spans. `Observer` fans one finished
turn (and one ended call) out to them; it runs once per turn, never per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agent_runtime.observability.logs import log_turn
from agent_runtime.observability.metrics import RuntimeMetrics
from agent_runtime.observability.traces import TurnSpans, spans_from_env

__all__ = ["Observer", "RuntimeMetrics", "TurnSpans", "spans_from_env"]


class Observer:
    def __init__(self, active_calls: Callable[[], int], calls_ended: Callable[[], int]) -> None:
        self.metrics = RuntimeMetrics(active_calls, calls_ended)
        self.spans: TurnSpans | None = None  # set by `enable_spans` (or a test's in-memory exporter)

    def enable_spans(self, environ: Mapping[str, str]) -> None:
        """OTel spans when the environment configures an OTLP exporter (see traces.py)."""
        self.spans = spans_from_env(environ)

    def turn(self, call_id: str, generation: int, kind: str, interrupted: bool,
             started_epoch_s: float, stages_ms: Mapping[str, float]) -> None:
        self.metrics.observe_turn(kind, interrupted, stages_ms)
        log_turn(call_id, generation, kind, interrupted, stages_ms)
        if self.spans is not None:
            self.spans.turn(call_id, generation, kind, interrupted, started_epoch_s, stages_ms)

    def call_ended(self, malformed_frames: int, barge_ins: int) -> None:
        self.metrics.observe_call(malformed_frames, barge_ins)

    def close(self) -> None:
        if self.spans is not None:
            self.spans.shutdown()
