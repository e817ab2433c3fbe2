"""The media stream's opening: a `start` the runtime cannot take is refused with a reason."""

from __future__ import annotations

import pytest

from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent

pytestmark = pytest.mark.anyio


def standins() -> Providers:
    return Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())


@pytest.mark.parametrize("media_format", [("audio/x-alaw", 8000, 1), ("audio/x-mulaw", 16000, 1), ("audio/x-mulaw", 8000, 2)])
async def test_a_stream_in_another_audio_format_is_refused(media_format: tuple[str, int, int], caplog) -> None:  # noqa: ANN001
    script = CallScript(utterances=[Utterance(caller_audio())], media_format=media_format, max_duration_s=5)
    async with live_agent(standins()) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        assert agent.runtime.calls_ended == 0 and not agent.runtime.active_calls  # no call was started
    assert result.close_code == 1008 and result.media_messages == 0
    assert "unsupported mediaFormat" in caplog.text


async def test_the_carrier_format_is_accepted() -> None:
    script = CallScript(utterances=[Utterance(caller_audio())], max_duration_s=20)
    async with live_agent(standins()) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
    assert result.media_messages > 0 and record.end_reason == "completed"
