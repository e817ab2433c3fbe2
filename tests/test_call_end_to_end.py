"""A whole call through the real server and the carrier simulator, with real speech.

Real parts: uvicorn + WebSockets on a loopback port, the simulator as the carrier, the real
`openai` client against the local OpenAI-compatible server, pocketsphinx and eSpeak NG.
"""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from agent_runtime.audio.g711 import ulaw_decode
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.pocketsphinx_stt import PocketsphinxSTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent
from fakes.openai_server import ChatStream, text_reply

pytestmark = pytest.mark.anyio

REPLY = "Thanks for telling me. I will make a note of that right away, and then we can talk about your visit."


@pytest.fixture(scope="module")
def stt() -> PocketsphinxSTT:
    return PocketsphinxSTT(pool_size=1)


@pytest.fixture
def providers(openai_client, stt) -> Providers:  # noqa: ANN001
    return Providers(stt=stt, llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())


async def test_call_end_to_end(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply(REPLY))
    async with live_agent(providers) as agent:
        script = CallScript(utterances=[Utterance(caller_audio())], max_duration_s=40)
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call(timeout_s=1.0)

    # The agent greeted first and answered the caller; both arrived as audible μ-law.
    assert result.greeting_latency_ms is not None and result.greeting_latency_ms < 3000
    assert len(result.turn_latencies_ms) == 1 and result.turn_latencies_ms[0] < 10_000
    agent_pcm = ulaw_decode(bytes(result.agent_leg)).astype(np.float64)
    assert np.sqrt(np.mean(agent_pcm**2)) > 300  # speech, not silence
    # S03: paced at real time: never more than ~1 s (plus one chunk) ahead of the media clock.
    t_first = result.media_arrivals[0][0]
    sent = 0
    for t, size in result.media_arrivals:
        sent += size
        assert sent / 8000 <= (t - t_first) + 1.25, f"{sent / 8000:.2f} s of audio by {t - t_first:.2f} s"
    # Every mark came back; the ledger confirmed the greeting and the reply as heard.
    assert result.marks_sent > 0 and result.marks_echoed == result.marks_sent
    assert result.clears == 0
    # The caller's words were transcribed (pocketsphinx on real speech) and reached the LLM.
    user_texts = [text for role, text in record.transcript if role == "user"]
    assert len(user_texts) == 1 and len(user_texts[0].split()) >= 3
    request = openai_server.chat_requests()[-1]
    assert request["messages"][-1] == {"role": "user", "content": user_texts[0]}
    assert request["stream"] is True
    assert record.transcript[-1] == ("assistant", REPLY)
    # S14: `stop` ended the call and its tasks within 1 s, once, as completed.
    assert record.end_reason == "completed"
    assert not agent.runtime.active_calls
    assert agent.runtime.calls_ended == 1
    assert record.malformed_frames == 0


async def test_s14_dropped_socket_ends_the_call_within_a_second(openai_server, providers) -> None:  # noqa: ANN001
    # The line dies mid-reply: no `stop`, no close frame.
    openai_server.push_chat(text_reply(REPLY + " " + REPLY))
    script = CallScript(utterances=[Utterance(caller_audio())], drop_after_s=7.0, max_duration_s=20)
    async with live_agent(providers, max_calls=1) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call(timeout_s=1.0)
        assert record.end_reason == "transport_lost" and agent.runtime.calls_ended == 1
        assert not agent.runtime.active_calls
        # With a limit of one call, the next call is accepted at once.
        openai_server.push_chat(text_reply("Hello again."))
        again = await place_call(agent.connect_url, CallScript(utterances=[], hangup_after_s=0.3, max_duration_s=6), SECRET)
        second = await agent.ended_call(timeout_s=1.0)
    assert result.media_messages > 0 and again.greeting_latency_ms is not None
    assert second is not record and second.end_reason == "completed"


async def test_line_noise_neither_wipes_the_greeting_nor_makes_turns(openai_server, providers) -> None:  # noqa: ANN001
    # Steady line noise from the first frame: the greeting plays whole; no turn, no clear.
    script = CallScript(utterances=[], noise_dbfs=-40.0, hangup_after_s=1.5, max_duration_s=10)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
    assert result.clears == 0 and record.barge_ins == 0
    assert record.transcript == [("assistant", record.turns[0].reply_text)]
    assert result.marks_echoed == result.marks_sent > 0
    assert openai_server.chat_requests() == []


async def test_s14_stop_mid_reply_ends_the_call_and_its_llm_stream_within_a_second(openai_server, providers) -> None:  # noqa: ANN001
    # The model is still writing (slowly) and the agent still speaking when the caller hangs up.
    openai_server.push_chat(ChatStream(text_reply(REPLY + " " + REPLY), delay=0.3))
    script = CallScript(utterances=[Utterance(caller_audio())], stop_after_s=13.0, max_duration_s=25)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call(timeout_s=1.0)
        with anyio.fail_after(1.0):
            while openai_server.open_streams:  # the upstream HTTP stream was closed, not left running
                await anyio.sleep(0.01)
    assert result.turn_latencies_ms and result.clears == 0  # it was mid-reply: the reply had started
    assert result.stop_sent_at is not None and record.ended_at is not None
    assert record.ended_at - result.stop_sent_at < 1.0
    assert record.end_reason == "completed" and agent.runtime.calls_ended == 1 and not agent.runtime.active_calls


async def test_s14_stop_while_the_caller_is_being_transcribed_ends_the_call_within_a_second(openai_server, providers) -> None:  # noqa: ANN001
    # `stop` lands while the offline STT (a worker process) is still decoding the caller's turn.
    script = CallScript(utterances=[Utterance(caller_audio())], stop_after_s=8.9, max_duration_s=20)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call(timeout_s=1.0)
    assert result.stop_sent_at is not None and record.ended_at is not None
    assert record.ended_at - result.stop_sent_at < 1.0
    assert record.end_reason == "completed" and not agent.runtime.active_calls
