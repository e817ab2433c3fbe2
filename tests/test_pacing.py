"""S03: output paced at real time, and an agent hang-up that waits for its last words to play."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from agent_runtime.providers.base import Providers
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent
from fakes.openai_server import ToolCall, tool_call_reply

pytestmark = pytest.mark.anyio

TICK_MS = 20


class SixSecondTTS:
    """6.00 s of 24 kHz audio as 150 chunks of 40 ms, handed over as fast as it is asked for."""

    sample_rate = 24000

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        t = np.arange(6 * 24000) / 24000
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for i in range(150):
            yield tone[i * 960 : (i + 1) * 960]


async def test_s03_six_seconds_paced_then_the_hang_up_waits_for_the_last_mark(openai_server, openai_client) -> None:  # noqa: ANN001
    openai_server.push_transcription("That's all I needed, thanks. Bye.")
    openai_server.push_chat(tool_call_reply([ToolCall("call_end", "end_call", ['{"reason": "caller said goodbye"}'])],
                                            text=["Goodbye, and thanks for calling."]))
    providers = Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=SixSecondTTS())
    script = CallScript(utterances=[Utterance(caller_audio())], extensions=("stop_reason", "hangup"), max_duration_s=40)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    timeline = result.timeline
    last_greeting_mark = max(i for i, (_, kind, name) in enumerate(timeline) if kind == "mark" and name.startswith("g1:"))
    reply = timeline[last_greeting_mark + 1 :]
    media = [(tick, int(size)) for tick, kind, size in reply if kind == "media"]
    [(hangup_tick, kind, reason)] = [entry for entry in reply if entry[1] == "hangup"]
    assert 48000 - 160 <= sum(size for _, size in media) <= 48000 + 160  # 6.00 s of 8 kHz μ-law
    sent = 0
    for tick, size in media:  # paced: never more than ~1 s (plus one 100 ms chunk) ahead of real time
        sent += size
        assert sent <= (tick - media[0][0]) * 160 + 8000 + 800, f"{sent} bytes by tick {tick}"
    assert (hangup_tick - media[0][0]) * TICK_MS >= 5800  # "finished speaking" only once it all played
    reply_marks = [name for _, kind, name in reply if kind == "mark"]
    echoes = {name: tick for tick, kind, name in reply if kind == "echo"}
    assert set(reply_marks) <= set(echoes)  # every mark of the goodbye came back …
    assert max(echoes[name] for name in reply_marks) <= hangup_tick  # … before the hang-up was sent
    assert all(tick <= hangup_tick for tick, _ in media)
    assert reason == "completed" and record.end_reason == "agent_hung_up"
    assert result.clears == 0 and not result.hung_up  # the agent ended it, the caller did not
