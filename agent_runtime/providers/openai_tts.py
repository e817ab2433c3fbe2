"""TTS adapter for OpenAI's `/v1/audio/speech`, streamed as raw 24 kHz PCM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import openai

_CHUNK_BYTES = 4800  # 100 ms of 24 kHz int16: small enough to start playout early


class OpenAITTS:
    sample_rate = 24000  # `response_format="pcm"` is always 24 kHz s16le mono

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
            rest = b""  # HTTP chunk boundaries may split a sample; carry the odd byte over
            async for data in resp.iter_bytes(chunk_size=_CHUNK_BYTES):
                data = rest + data
                usable = len(data) - (len(data) % 2)
                rest = data[usable:]
                if usable:
                    # astype copies: a frombuffer view is read-only and would pin the bytes object
                    yield np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
            # A trailing odd byte is a truncated sample; dropping it is the only sane choice.
