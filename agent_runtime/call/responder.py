"""One agent response ("generation"): LLM text → sentences → TTS → 8 kHz → paced playout.

The LLM and TTS run as a two-stage pipeline so the first sentence is spoken while the model is
still writing the rest. Cancelling the enclosing scope (barge-in, hang-up) stops both at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from agent_runtime.agent.sentences import SentenceChunker
from agent_runtime.audio.resample import StreamResampler
from agent_runtime.call.playout import SAMPLE_RATE, Playout
from agent_runtime.providers.base import LLM, TTS, TextDelta
from agent_runtime.runtime import TurnTrace

log = logging.getLogger("agent_runtime.call")


class Responder:
    def __init__(self, llm: LLM, tts: TTS, playout: Playout, call_id: str, fallback_line: str) -> None:
        self._llm = llm
        self._tts = tts
        self._playout = playout
        self._call_id = call_id
        self._fallback_line = fallback_line

    async def say(self, trace: TurnTrace, text: str) -> None:
        """Speaks fixed text (greeting, fallback) as one generation."""
        send, recv = anyio.create_memory_object_stream[str](1)
        async with send:
            await send.send(text)
        await self._speak(trace, recv)

    async def reply(self, trace: TurnTrace, messages: Sequence[dict[str, Any]]) -> str:
        """Streams the model's reply into speech; returns the model's full text."""
        send, recv = anyio.create_memory_object_stream[str](16)
        parts: list[str] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write, trace, messages, send, parts)
            await self._speak(trace, recv)
        return "".join(parts)

    async def _write(
        self,
        trace: TurnTrace,
        messages: Sequence[dict[str, Any]],
        send: MemoryObjectSendStream[str],
        parts: list[str],
    ) -> None:
        chunker = SentenceChunker()
        async with send:
            try:
                async for event in self._llm.stream(messages):
                    if not isinstance(event, TextDelta) or not event.text:
                        continue
                    _stage(trace, "llm_first_token")
                    parts.append(event.text)
                    for sentence in chunker.feed(event.text):
                        _stage(trace, "first_sentence")
                        await send.send(sentence)
            except Exception as exc:  # a provider fault must never leave dead air
                log.warning("llm failed: %s", type(exc).__name__, extra={"call_id": self._call_id})
                if not parts:
                    await send.send(self._fallback_line)  # spoken, but not written into history
                    return
            tail = chunker.flush()
            if tail:
                _stage(trace, "first_sentence")
                await send.send(tail)

    async def _speak(self, trace: TurnTrace, sentences: MemoryObjectReceiveStream[str]) -> None:
        resampler = StreamResampler(self._tts.sample_rate, SAMPLE_RATE)
        playout = self._playout
        async with sentences:
            async for sentence in sentences:
                playout.begin_text(sentence)
                try:
                    async for pcm in _guarded(self._tts.synthesize(sentence)):
                        _stage(trace, "tts_first_audio")
                        out = resampler.process(pcm)
                        if out.size:
                            await playout.play(out)
                            if "first_frame_sent" not in trace.stages and playout.first_frame_sent_at is not None:
                                trace.stages["first_frame_sent"] = playout.first_frame_sent_at
                except Exception as exc:
                    log.warning("tts failed: %s", type(exc).__name__, extra={"call_id": self._call_id})
                playout.end_text()
        tail = resampler.flush()
        if tail.size:
            await playout.play(tail)
        await playout.finish()
        if "first_frame_sent" not in trace.stages and playout.first_frame_sent_at is not None:
            trace.stages["first_frame_sent"] = playout.first_frame_sent_at


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


def _stage(trace: TurnTrace, name: str) -> None:
    if name not in trace.stages:
        trace.stages[name] = anyio.current_time()
