"""Speaking one generation: text pieces → TTS → 8 kHz → paced playout.

The writer (the orchestrator's LLM loop, or a fixed line) and the speaker run as a two-stage
pipeline, so the first sentence is spoken while the model is still writing the rest.
Cancelling the enclosing scope (barge-in, hang-up) stops both at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from agent_runtime.agent.orchestrator import Orchestrator, Outcome
from agent_runtime.audio.resample import StreamResampler
from agent_runtime.call.playout import SAMPLE_RATE, Playout
from agent_runtime.providers.base import TTS
from agent_runtime.runtime import TurnTrace

log = logging.getLogger("agent_runtime.call")


class Responder:
    def __init__(self, tts: TTS, playout: Playout, call_id: str) -> None:
        self._tts = tts
        self._playout = playout
        self._call_id = call_id

    async def say(self, trace: TurnTrace, text: str) -> None:
        """Speaks fixed text (greeting, fallback, goodbye) as one generation."""
        send, recv = anyio.create_memory_object_stream[str](1)
        async with send:
            await send.send(text)
        await self._speak(trace, recv)

    async def reply(self, trace: TurnTrace, orchestrator: Orchestrator, generation: int, outcome: Outcome) -> None:
        """The model's reply (with its tool rounds), spoken as it streams."""
        send, recv = anyio.create_memory_object_stream[str](16)

        async def write() -> None:
            async with send:
                await orchestrator.respond(generation, send, trace.stages, outcome)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await self._speak(trace, recv)

    async def _speak(self, trace: TurnTrace, sentences: MemoryObjectReceiveStream[str]) -> None:
        resampler = StreamResampler(self._tts.sample_rate, SAMPLE_RATE)
        playout = self._playout
        stages = trace.stages
        async with sentences:
            async for sentence in sentences:
                playout.begin_text(sentence)
                try:
                    async for pcm in _guarded(self._tts.synthesize(sentence)):
                        stages.setdefault("tts_first_audio", anyio.current_time())
                        out = resampler.process(pcm)
                        if out.size:
                            await playout.play(out)
                            if "first_frame_sent" not in stages and playout.first_frame_sent_at is not None:
                                stages["first_frame_sent"] = playout.first_frame_sent_at
                except Exception as exc:  # one bad sentence must not silence the rest
                    log.warning("tts failed: %s", type(exc).__name__, extra={"call_id": self._call_id})
                playout.end_text()
        tail = resampler.flush()
        if tail.size:
            await playout.play(tail)
        await playout.finish()
        if "first_frame_sent" not in stages and playout.first_frame_sent_at is not None:
            stages["first_frame_sent"] = playout.first_frame_sent_at


async def _guarded(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Closes the provider's iterator even when we stop early (cancellation)."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
