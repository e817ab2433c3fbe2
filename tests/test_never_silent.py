"""Never silent when a provider is down: the fallback line is heard (from the line cache, so a dead
TTS cannot silence it), and repeated failures end the call politely instead of looping forever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest

from agent_runtime.agent.definition import Agent
from agent_runtime.call.line_cache import warm_lines
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent, speech_seconds

pytestmark = pytest.mark.anyio


class BreakableTTS(StandInTTS):
    """Real speech until `broken`, then every request fails, as a provider outage does."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        self.failures = 0

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        if self.broken:
            self.failures += 1
            raise ConnectionError("tts provider unreachable")
        async for chunk in super().synthesize(text):
            yield chunk


class FailingSTT:
    def __init__(self) -> None:
        self.calls = 0

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        self.calls += 1
        raise ConnectionError("stt provider unreachable")


def _questions(n: int) -> list[Utterance]:
    speech = speech_seconds(caller_audio(), 0.0, 2.0)
    return [Utterance(speech, gap_s=0.5) for _ in range(n)]


async def _call(providers: Providers, tts: StandInTTS, script: CallScript, agent: Agent | None = None):  # noqa: ANN202
    async with live_agent(providers, agent) as live:
        await warm_lines(live.runtime.lines, live.runtime.agent, tts)  # as `serve` does at start-up
        if isinstance(tts, BreakableTTS):
            tts.broken = True
        result = await place_call(live.connect_url, script, SECRET)
        record = await live.ended_call()
    return result, record


async def test_a_dead_tts_still_gives_the_caller_a_voice_then_a_polite_goodbye() -> None:
    tts = BreakableTTS()
    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=tts)
    result, record = await _call(providers, tts, CallScript(utterances=_questions(4), max_duration_s=60))

    # Each of the three failed answers was replaced by audible speech (the cached fallback line)
    # within 3 s of the caller's turn ending (800 ms of it is the end-of-turn hangover) …
    assert len(result.turn_latencies_ms) == 3 and max(result.turn_latencies_ms) < 3000
    # Only the model's sentences (two per answer) went to the dead TTS; fallback and goodbye never did.
    assert tts.failures == 3 * 2
    # … then, instead of looping forever, the agent said goodbye and ended the call.
    assert record.end_reason == "failed" and result.close_code == 1000 and not result.hung_up
    replies = [t for t in record.turns if t.kind == "reply"]
    assert len(replies) == 3 and all("first_frame_sent" not in t.stages for t in replies)
    # The fallback is not something the model said: history has no assistant reply after the greeting.
    assert [role for role, _ in record.transcript].count("assistant") == 1


async def test_stt_failures_count_toward_the_polite_end() -> None:
    tts = StandInTTS()
    stt = FailingSTT()
    agent = replace(Agent.from_prompts(), max_consecutive_failures=2)
    result, record = await _call(Providers(stt=stt, llm=StandInLLM(), tts=tts), tts,
                                 CallScript(utterances=_questions(3), max_duration_s=60), agent)
    assert stt.calls == 2  # the third question was never asked: the call had ended
    assert len(result.turn_latencies_ms) == 2 and max(result.turn_latencies_ms) < 3000
    assert record.end_reason == "failed"


async def test_an_idle_caller_is_asked_then_the_call_ends_politely() -> None:
    tts = StandInTTS()
    agent = Agent.from_prompts()
    agent = replace(agent, turns=replace(agent.turns, idle_reprompt_s=3.0, idle_max_prompts=1))
    # The caller never says a word and never hangs up.
    script = CallScript(utterances=[], hangup_after_s=60.0, max_duration_s=40)
    async with live_agent(Providers(stt=StandInSTT(), llm=StandInLLM(), tts=tts), agent) as live:
        result = await place_call(live.connect_url, script, SECRET)
        record = await live.ended_call()

    assert record.end_reason == "caller_idle" and not result.hung_up
    lines = [text for role, text in record.transcript if role == "assistant"]
    assert lines[1:] == [agent.idle_line, agent.idle_goodbye_line]
    # Each prompt came idle_reprompt_s after the previous words finished playing (media time).
    audio_ticks = [tick for tick, kind, _ in result.timeline if kind == "media"]
    gaps = [b - a for a, b in zip(audio_ticks, audio_ticks[1:]) if b - a > 10]
    assert len(gaps) == 2 and all(3.0 <= gap * 0.02 <= 4.5 for gap in gaps), gaps


async def test_a_caller_typing_a_long_entry_is_not_idle() -> None:
    """Keys 450 ms apart (under dtmf_gap_ms) for longer than idle_reprompt_s: each key is the caller."""
    agent = Agent.from_prompts()
    agent = replace(agent, turns=replace(agent.turns, idle_reprompt_s=3.0, idle_max_prompts=1))
    keys = "12345678901234"
    script = CallScript(utterances=[], dtmf=[(5.0 + 0.45 * i, k) for i, k in enumerate(keys)], hangup_after_s=1.0,
                        max_duration_s=40)
    async with live_agent(Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS()), agent) as live:
        await place_call(live.connect_url, script, SECRET)
        record = await live.ended_call()
    assert record.end_reason == "completed"
    assert ("user", f"(the caller pressed {keys} on the keypad)") in record.transcript
    assert agent.idle_line not in [text for _, text in record.transcript]
