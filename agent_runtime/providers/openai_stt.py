"""STT adapter for OpenAI's `/v1/audio/transcriptions` (one finished utterance per request)."""

from __future__ import annotations

import io

import numpy as np
import openai
import soundfile as sf


class OpenAISTT:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str = "gpt-4o-mini-transcribe",
        language: str = "en",
    ) -> None:
        self._client = client
        self._model = model
        self._language = language

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        # The endpoint rejects raw PCM; a WAV header is the cheapest container it accepts.
        buf = io.BytesIO()
        sf.write(buf, np.asarray(pcm, dtype=np.int16), sample_rate, format="WAV", subtype="PCM_16")
        result = await self._client.audio.transcriptions.create(
            model=self._model,
            file=("utt.wav", buf.getvalue(), "audio/wav"),
            language=self._language,
        )
        return (result.text or "").strip()
