"""OpenTelemetry spans for turns, only when asked for.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set and the optional
`otel` extra is installed; then opentelemetry is imported here and nowhere else, and a
per-Runtime TracerProvider (never the global one) exports over OTLP. Spans are made after a
turn has finished, from its recorded stage times, so the call's audio path never waits on them.

One turn = a `turn` span from end of speech to the last stage, with one child span per stage
(from the previous stage to this one), so a trace view shows where the time went.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("agent_runtime.observability")

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class TurnSpans:
    """Turns as spans on `provider` (an opentelemetry.sdk.trace.TracerProvider)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace

        self._provider = provider
        self._tracer = provider.get_tracer("agent_runtime")
        self._in_context = trace.set_span_in_context

    def turn(self, call_id: str, generation: int, kind: str, interrupted: bool,
             started_epoch_s: float, stages_ms: Mapping[str, float]) -> None:
        def ns(ms: float) -> int:
            return int((started_epoch_s + ms / 1000.0) * 1e9)

        ordered = sorted(stages_ms.items(), key=lambda item: item[1])
        attributes = {"call.id": call_id, "turn.generation": generation, "turn.kind": kind, "turn.interrupted": interrupted}
        parent = self._tracer.start_span("turn", start_time=ns(0.0), attributes=attributes)
        context = self._in_context(parent)
        previous = 0.0
        for stage, ms in ordered:
            if stage == "end_of_speech":
                continue
            child = self._tracer.start_span(stage, context=context, start_time=ns(previous),
                                            attributes={"call.id": call_id, "stage.ms": ms})
            child.end(end_time=ns(ms))
            previous = ms
        parent.end(end_time=ns(previous))

    def shutdown(self) -> None:
        self._provider.shutdown()


def spans_from_env(environ: Mapping[str, str]) -> TurnSpans | None:
    """TurnSpans exporting over OTLP when configured; None (and nothing imported) otherwise."""
    if not any(environ.get(name) for name in ENDPOINT_VARS):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk is not installed "
                    "(pip install 'agent_runtime[otel]'); turn spans are off")
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # type: ignore[no-redef]
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but no OTLP exporter is installed "
                        "(pip install 'agent_runtime[otel]'); turn spans are off")
            return None
    # The exporter reads the endpoint, headers and protocol from the standard OTEL_* variables;
    # the resource takes OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
    provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "agent-runtime")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return TurnSpans(provider)
