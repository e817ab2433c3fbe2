"""Tools during live calls (S11-S13): the real server, the carrier simulator, real speech."""

from __future__ import annotations

import time
from dataclasses import replace

import anyio
import pytest

from agent_runtime.agent.definition import Agent
from agent_runtime.agent.orchestrator import CANCELLED
from agent_runtime.agent.tools import ToolRegistry, tool
from agent_runtime.carrier.events import Media
from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent, speech_seconds
from fakes.openai_server import ToolCall, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio
TICK_MS = 20


@pytest.fixture
def providers(openai_client) -> Providers:  # noqa: ANN001
    return Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())


def _with_tools(*tools: object) -> Agent:
    return replace(Agent.from_prompts(), tools=ToolRegistry(tools))


def _interjection():  # noqa: ANN202
    return speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.3, 1.2)


async def test_s11_barge_in_still_works_while_a_tool_hangs(openai_server, providers) -> None:  # noqa: ANN001
    @tool(timeout_s=8.0, filler="Let me check the stock for you, this can take a little while.", filler_after_ms=200)
    async def check_inventory(item: str) -> str:
        """Checks stock."""
        await anyio.sleep_forever()
        return ""

    openai_server.push_chat(tool_call_reply([ToolCall("call_i", "check_inventory", ['{"item": "tea"}'])]),
                            text_reply("Sure, what else?"))
    openai_server.push_transcription("Do you have green tea?", "Never mind that.")
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(_interjection(), barge_in_after_s=0.8)])
    async with live_agent(providers, _with_tools(check_inventory)) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        await agent.ended_call()

    clears = result.clear_ticks()
    assert len(clears) == 1 and (clears[0] - result.speech_onset_ticks[1]) * TICK_MS <= 300
    followup = openai_server.chat_requests()[1]["messages"]
    assert {"role": "tool", "tool_call_id": "call_i", "content": CANCELLED} in followup
    assert followup[-1] == {"role": "user", "content": "Never mind that."}


async def test_s12_interrupted_mid_tool_then_a_valid_request_and_a_prompt_reply(openai_server, providers) -> None:  # noqa: ANN001
    runs: list[str] = []

    @tool
    async def book_slot(day: str) -> str:
        """Books an appointment slot."""
        runs.append(day)
        await anyio.sleep(10)
        return "booked"

    openai_server.push_chat(tool_call_reply([ToolCall("call_b", "book_slot", ['{"day": "monday"}'])]),
                            text_reply("Okay, I have not booked anything."))
    openai_server.push_transcription("Book me for Monday.", "Actually never mind.")
    # "actually never mind" 2.0 s after the first request ended, while book_slot runs silently.
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(_interjection(), after_previous_s=2.0)])
    async with live_agent(providers, _with_tools(book_slot)) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    requests = openai_server.chat_requests()
    assert len(requests) == 2 and runs == ["monday"]  # the strict server accepted the follow-up
    assert {"role": "tool", "tool_call_id": "call_b", "content": CANCELLED} in requests[1]["messages"]
    assert record.transcript[-1] == ("assistant", "Okay, I have not booked anything.")
    assert result.turn_latencies_ms[-1] <= 3000  # reply audible ≤ 3 s after the caller stopped


async def test_s12_a_tool_that_finished_keeps_its_result_and_is_not_rerun(openai_server, providers) -> None:  # noqa: ANN001
    runs: list[str] = []

    @tool(interruptible=False)
    async def book_slot(day: str) -> str:
        """Books an appointment slot."""
        await anyio.sleep(1.0)
        runs.append(day)
        return "booked monday 9am"

    openai_server.push_chat(tool_call_reply([ToolCall("call_b", "book_slot", ['{"day": "monday"}'])]),
                            text_reply("You are booked, anything else?"))
    openai_server.push_transcription("Book me for Monday.", "Wait, hello?")
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(_interjection(), after_previous_s=1.1)])
    async with live_agent(providers, _with_tools(book_slot)) as agent:
        await place_call(agent.connect_url, script, SECRET)
        await agent.ended_call()

    followup = openai_server.chat_requests()[1]["messages"]
    assert runs == ["monday"]
    assert {"role": "tool", "tool_call_id": "call_b", "content": "booked monday 9am"} in followup


async def test_s13_a_blocking_tool_does_not_stall_the_frame_loop(openai_server, providers, monkeypatch) -> None:  # noqa: ANN001
    frames: list[float] = []
    decode = MediaStreamCodec.decode

    def counting_decode(self: MediaStreamCodec, frame: str | bytes):  # noqa: ANN202
        event = decode(self, frame)
        if isinstance(event, Media):
            frames.append(anyio.current_time())
        return event

    monkeypatch.setattr(MediaStreamCodec, "decode", counting_decode)
    busy: list[float] = []

    @tool
    def crunch_numbers(n: int) -> str:
        """A plain `def` that burns CPU for 2 s."""
        start = time.perf_counter()
        busy.append(time.monotonic())  # the event loop's clock (asyncio uses monotonic time)
        while time.perf_counter() - start < 2.0:
            pass
        return "42"

    openai_server.push_chat(
        tool_call_reply([ToolCall("call_c", "crunch_numbers", ['{"n": 7}'])],
                        text=["Let me work that out for you, it takes a moment to calculate everything. "]),
        text_reply("What would you like instead?"))
    openai_server.push_transcription("What is six times seven?", "Stop, something else.")
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(_interjection(), barge_in_after_s=0.5)])
    async with live_agent(providers, _with_tools(crunch_numbers)) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    clears = result.clear_ticks()
    assert len(clears) == 1 and (clears[0] - result.speech_onset_ticks[1]) * TICK_MS <= 300
    assert record.barge_ins == 1  # an interruption, not a new turn queued after the reply
    # Frames kept being read while the tool burned CPU: ≥ 45 per second over its 2 s.
    window = [t for t in frames if busy[0] <= t < busy[0] + 2.0]
    assert len(window) >= 90, len(window)
