"""Per-turn traces through the real server and the carrier simulator: /metrics, the JSON turn log, OTel spans.

Stand-in engines (instant, real recorded speech) keep the calls short; what is under test is the
runtime's own bookkeeping of stage times, not the engines.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_runtime.observability.logs import JsonFormatter
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent

pytestmark = pytest.mark.anyio

REPLY_STAGES = ("stt_done", "llm_first_token", "first_sentence", "tts_first_audio", "first_frame_sent", "first_mark")


@pytest.fixture
def providers() -> Providers:
    return Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())


@pytest.fixture
def turn_lines() -> Iterator[io.StringIO]:
    """The `agent_runtime.turns` logger, formatted by the JSON formatter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("agent_runtime.turns")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_a_call_fills_the_stage_histograms_and_the_turn_log(providers, turn_lines) -> None:  # noqa: ANN001
    script = CallScript(utterances=[Utterance(caller_audio())], hangup_after_s=0.5, max_duration_s=30)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{agent.config.base_url}/metrics")
    assert result.turn_latencies_ms, "the agent answered"
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)  # parses with prometheus_client's own parser

    def count(stage: str, kind: str) -> float:
        return samples.get(("agent_runtime_turn_stage_seconds_count", (("kind", kind), ("stage", stage))), 0.0)

    for stage in REPLY_STAGES:
        assert count(stage, "reply") == 1, stage
    for stage in ("first_sentence", "tts_first_audio", "first_frame_sent", "first_mark"):
        assert count(stage, "greeting") == 1, stage
    assert samples[("agent_runtime_active_calls", ())] == 0
    assert samples[("agent_runtime_calls_ended_total", ())] == 1
    assert samples[("agent_runtime_turns_total", (("interrupted", "false"), ("kind", "reply")))] == 1
    assert samples[("agent_runtime_greeting_cache_total", (("result", "miss"),))] == 1
    assert ("agent_runtime_malformed_frames_total", ()) in samples and ("agent_runtime_barge_ins_total", ()) in samples

    # The call record holds the same turns, in ms since end of speech, in stage order.
    reply = next(t for t in record.turns if t.kind == "reply")
    times = [reply.stages[s] for s in ("end_of_speech", *REPLY_STAGES)]
    assert times == sorted(times), reply.stages

    # One JSON line per turn, with the call id and the stage times (and no transcript text).
    lines = [json.loads(line) for line in turn_lines.getvalue().splitlines()]
    turns = [line for line in lines if line.get("call_id") == record.call_id]
    assert [line["kind"] for line in turns] == ["greeting", "reply"]
    assert turns[1]["logger"] == "agent_runtime.turns" and turns[1]["generation"] == reply.generation
    assert set(REPLY_STAGES) <= set(turns[1]["stages_ms"]) and turns[1]["stages_ms"] == reply.stages
    assert reply.user_text not in json.dumps(turns)


async def test_turns_become_otel_spans_with_an_in_memory_exporter(providers) -> None:  # noqa: ANN001
    sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is not installed (extra: otel)")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agent_runtime.observability.traces import TurnSpans

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    script = CallScript(utterances=[Utterance(caller_audio())], hangup_after_s=0.5, max_duration_s=30)
    async with live_agent(providers) as agent:
        agent.runtime.observer.spans = TurnSpans(provider)
        await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
    spans = exporter.get_finished_spans()
    turns = [s for s in spans if s.name == "turn"]
    assert [s.attributes["turn.kind"] for s in turns] == ["greeting", "reply"]
    assert all(s.attributes["call.id"] == record.call_id for s in turns)
    reply = turns[1]
    children = sorted((s for s in spans if s.parent is not None and s.parent.span_id == reply.context.span_id),
                      key=lambda s: s.start_time)
    assert [s.name for s in children] == list(REPLY_STAGES)
    assert children[0].start_time == reply.start_time and children[-1].end_time == reply.end_time
    assert all(a.end_time <= b.start_time + 1000 for a, b in zip(children, children[1:]))  # contiguous stages


def test_no_otel_configured_imports_nothing() -> None:
    # In a fresh interpreter: a runtime's observer with no OTLP endpoint never imports opentelemetry.
    code = (
        "import sys\n"
        "from agent_runtime.observability import Observer\n"
        "observer = Observer(lambda: 0, lambda: 0)\n"
        "observer.enable_spans({})\n"
        "assert observer.spans is None\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'opentelemetry was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_json_formatter_carries_extra_fields() -> None:
    record = logging.LogRecord("agent_runtime.call", logging.WARNING, __file__, 1, "stt failed (%s)", ("Timeout",), None)
    record.call_id = "call_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "stt failed (Timeout)" and line["call_id"] == "call_1" and line["level"] == "WARNING"


def test_otlp_endpoint_without_an_exporter_package_warns_and_stays_off(caplog) -> None:  # noqa: ANN001
    pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is not installed (extra: otel)")
    from agent_runtime.observability.traces import TurnSpans, spans_from_env

    spans = spans_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        assert spans is None and "no OTLP exporter is installed" in caplog.text
    else:
        assert isinstance(spans, TurnSpans)
        spans.shutdown()


def test_cli_log_format_json_and_a_bad_value(tmp_path) -> None:  # noqa: ANN001
    code = (
        "import logging, sys\n"
        "from agent_runtime.observability.logs import configure_logging, log_turn\n"
        "configure_logging(sys.argv[1], sys.argv[2])\n"
        "log_turn('call_x', 2, 'reply', False, {'end_of_speech': 0.0, 'first_frame_sent': 812.5})\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "INFO", "json"], capture_output=True, text=True, timeout=60)
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["logger"] == "agent_runtime.turns" and line["call_id"] == "call_x"
    assert line["stages_ms"] == {"end_of_speech": 0.0, "first_frame_sent": 812.5}
    bad = subprocess.run([sys.executable, "-m", "agent_runtime.cli", "serve", "--allow-unsigned"], capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "AGENT_LOG_FORMAT": "xml"})
    assert bad.returncode != 0 and "AGENT_LOG_FORMAT" in bad.stderr
