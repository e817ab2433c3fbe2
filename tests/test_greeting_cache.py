"""The greeting fast path: with the greeting's audio cached, its first frame leaves right after `start`.

A slow stand-in TTS (real recorded speech, but 600 ms before its first chunk, like a remote TTS)
makes the difference large; only the ratio is asserted, not absolute speed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import numpy as np
import pytest

from agent_runtime.agent.definition import Agent
from agent_runtime.call.line_cache import LineCache, static_line, warm_lines
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, place_call
from callkit import SECRET, live_agent

pytestmark = pytest.mark.anyio

TTS_DELAY_S = 0.6


class SlowTTS(StandInTTS):
    """A TTS that takes a while to start speaking, as a network TTS does."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        self.calls += 1
        await anyio.sleep(TTS_DELAY_S)
        async for chunk in super().synthesize(text):
            yield chunk


def _greeting_only() -> CallScript:
    return CallScript(utterances=[], hangup_after_s=0.2, max_duration_s=15)


async def test_the_second_call_greets_from_the_cache() -> None:
    tts = SlowTTS()
    async with live_agent(Providers(stt=StandInSTT(), llm=StandInLLM(), tts=tts)) as agent:
        first = await place_call(agent.connect_url, _greeting_only(), SECRET)
        first_record = await agent.ended_call()
        second = await place_call(agent.connect_url, _greeting_only(), SECRET)
        second_record = agent.runtime.finished_calls[-1]
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{agent.config.base_url}/metrics")).text
    assert second_record is not first_record
    uncached, cached = first.greeting_latency_ms, second.greeting_latency_ms
    assert uncached is not None and cached is not None
    assert uncached >= TTS_DELAY_S * 1000  # the first call waited for the TTS …
    assert cached < 0.5 * uncached, (cached, uncached)  # … the second did not
    assert tts.calls == 1  # the second greeting never reached the TTS
    # The same greeting, to the byte: the cache holds exactly what playout sent the first time.
    assert second.media_bytes == first.media_bytes
    assert bytes(second.agent_leg).strip(b"\xff") == bytes(first.agent_leg).strip(b"\xff")  # μ-law silence around it
    # Both calls heard the whole greeting (its marks came back), and the stage times say so.
    for result, record in ((first, first_record), (second, second_record)):
        assert result.marks_echoed == result.marks_sent > 0
        assert record.turns[0].kind == "greeting" and "first_mark" in record.turns[0].stages
    assert second_record.turns[0].stages["first_frame_sent"] < 0.5 * first_record.turns[0].stages["first_frame_sent"]
    assert 'agent_runtime_greeting_cache_total{result="hit"} 1.0' in metrics
    assert 'agent_runtime_greeting_cache_total{result="miss"} 1.0' in metrics


async def test_warm_up_fills_the_cache_for_the_first_caller() -> None:
    tts = SlowTTS()
    async with live_agent(Providers(stt=StandInSTT(), llm=StandInLLM(), tts=tts)) as agent:
        runtime = agent.runtime
        greeting = static_line(runtime.agent, runtime.agent.greeting)
        assert greeting is not None and greeting in await warm_lines(runtime.lines, runtime.agent, tts)
        result = await place_call(agent.connect_url, _greeting_only(), SECRET)
        await agent.ended_call()
    assert result.greeting_latency_ms is not None and result.greeting_latency_ms < 0.5 * TTS_DELAY_S * 1000
    assert tts.calls == 3  # only the warm-up: greeting, fallback and goodbye lines


def test_only_greetings_without_per_call_variables_are_warmed() -> None:
    agent = Agent.from_prompts()
    assert static_line(agent, agent.greeting) == "Hello, thanks for calling Acme Dental. How can I help you today?"
    per_call = Agent(name="x", system_prompt="s", greeting="Hi {caller}, it is {time}.", fallback_line="f")
    assert static_line(per_call, per_call.greeting) is None
    unknown = Agent(name="x", system_prompt="s", greeting="Welcome to {shop}.", fallback_line="f")
    assert static_line(unknown, unknown.greeting) is None  # only a custom parameter could fill it


def test_cache_is_a_small_lru() -> None:
    cache = LineCache(max_entries=2)
    cache.put("a", b"\x01" * 800)
    cache.put("b", b"\x02" * 800)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"\x03" * 800)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    cache.put("empty", b"")
    assert cache.get("empty") is None
