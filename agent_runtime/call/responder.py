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
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream

from agent_runtime.agent.orchestrator import Orchestrator, Outcome
from agent_runtime.audio.g711 import ulaw_encode
from agent_runtime.audio.resample import StreamResampler
from agent_runtime.call.line_cache import LineCache
from agent_runtime.call.playout import SAMPLE_RATE, Playout
from agent_runtime.providers.base import TTS
from agent_runtime.runtime import TurnTrace

log = logging.getLogger("agent_runtime.call")


class Responder:
    def __init__(self, tts: TTS, playout: Playout, call_id: str) -> None:
        self._tts = tts
        self._playout = playout
        self._call_id = call_id

    async def say_line(self, trace: TurnTrace, text: str, cache: LineCache) -> bool:
        """A fixed line (greeting, fallback, goodbye): from the cache when its audio is there
        (True: no TTS needed, so it is heard even while TTS fails), else spoken and then cached."""
        audio = cache.get(text)
        playout = self._playout
        if audio is not None:
            trace.stages["first_sentence"] = anyio.current_time()
            try:
                playout.begin_text(text)
                await playout.play_ulaw(audio)
                playout.end_text()
                await playout.finish()
            finally:  # a line cut by the caller still sent its first frame
                if playout.first_frame_sent_at is not None:
                    trace.stages["first_frame_sent"] = playout.first_frame_sent_at
            return True
        send, recv = anyio.create_memory_object_stream[str](1)
        async with send:
            await send.send(text)
        captured: list[np.ndarray] = []
        if await self._speak(trace, recv, captured):  # only a line spoken whole (a cut one raises out of here)
            cache.put(text, ulaw_encode(np.concatenate(captured)) if captured else b"")
        return False

    async def reply(self, trace: TurnTrace, orchestrator: Orchestrator, generation: int, outcome: Outcome) -> None:
        """The model's reply (with its tool rounds), spoken as it streams."""
        send, recv = anyio.create_memory_object_stream[str](16)

        async def write() -> None:
            async with send:
                await orchestrator.respond(generation, send, trace.stages, outcome)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await self._speak(trace, recv)

    async def _speak(
        self, trace: TurnTrace, sentences: MemoryObjectReceiveStream[str], capture: list[np.ndarray] | None = None
    ) -> bool:
        """Speaks every sentence; True when TTS never failed. `capture` collects the 8 kHz audio played."""
        resampler = StreamResampler(self._tts.sample_rate, SAMPLE_RATE)
        playout = self._playout
        stages = trace.stages
        ok = True
        async with sentences:
            async for sentence in sentences:
                stages.setdefault("first_sentence", anyio.current_time())  # fixed lines: handed to TTS now
                playout.begin_text(sentence)
                try:
                    async for pcm in _guarded(self._tts.synthesize(sentence)):
                        stages.setdefault("tts_first_audio", anyio.current_time())
                        out = resampler.process(pcm)
                        if out.size:
                            if capture is not None:
                                capture.append(out)
                            await playout.play(out)
                            if "first_frame_sent" not in stages and playout.first_frame_sent_at is not None:
                                stages["first_frame_sent"] = playout.first_frame_sent_at
                except Exception as exc:  # one bad sentence must not silence the rest
                    ok = False
                    log.warning("tts failed: %s", type(exc).__name__, extra={"call_id": self._call_id})
                playout.end_text()
        tail = resampler.flush()
        if tail.size:
            if capture is not None:
                capture.append(tail)
            await playout.play(tail)
        await playout.finish()
        if "first_frame_sent" not in stages and playout.first_frame_sent_at is not None:
            stages["first_frame_sent"] = playout.first_frame_sent_at
        return ok


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
