"""TTS adapter for OpenAI's `/v1/audio/speech`, streamed as raw 24 kHz PCM.

Servers that answer with a WAV file instead are handled too (providers/speech_bytes.py): the
header never reaches the caller, and audio at another rate is resampled to `sample_rate`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import openai

from agent_runtime.providers.speech_bytes import SpeechDecoder

_CHUNK_BYTES = 4800  # 100 ms of 24 kHz int16: small enough to start playout early


class OpenAITTS:
    sample_rate = 24000  # `response_format="pcm"` is 24 kHz s16le mono; other audio is resampled to it

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str = "gpt-4o-mini-tts",
        voice: str = "coral",
        instructions: str | None = None,
    ) -> None:
        self._client = client
        self._model = model
        self._voice = voice
        self._instructions = instructions

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        kwargs: dict[str, Any] = {
            "model": self._model,
            "voice": self._voice,
            "input": text,
            "response_format": "pcm",
        }
        if self._instructions:
            kwargs["instructions"] = self._instructions
        async with self._client.audio.speech.with_streaming_response.create(**kwargs) as resp:
            # Raw PCM as asked, or a WAV file from servers that ignore the format (S01).
            decoder = SpeechDecoder(self.sample_rate)
            async for data in resp.iter_bytes(chunk_size=_CHUNK_BYTES):
                pcm = decoder.feed(data)
                if pcm.size:
                    yield pcm
            tail = decoder.finish()
            if tail.size:
                yield tail
