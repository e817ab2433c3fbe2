"""Zero-latency stand-in engines, for benchmarking the runtime itself (`AGENT_*=standin`).

They answer at once with fixed text and precomputed real speech, so a benchmark measures the
runtime's own cost (frames, VAD, resampling, playout, marks) and nothing of a model's. The TTS
emits 24 kHz like a real streaming TTS, so the 24 → 8 kHz resampler path is exercised.
Not for production: the agent says the same thing whatever the caller says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent_runtime.providers.base import LLMEvent, TextDelta

TRANSCRIPT = "I would like to book a cleaning next week, please."
REPLY = "Sure, I can book that for you. Which day works best next week?"
SPEECH_WAV = Path(__file__).resolve().parent / "data" / "standin_speech.wav"  # shipped in the package
TTS_RATE = 24000
CHUNK_SAMPLES = TTS_RATE // 10  # 100 ms, about what streaming TTS APIs deliver
SECONDS_PER_CHAR = 0.06  # ~16 characters per second: ordinary speaking rate


class StandInSTT:
    """Returns a fixed transcript immediately."""

    def __init__(self, text: str = TRANSCRIPT) -> None:
        self.text = text

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        return self.text


class StandInLLM:
    """Streams a fixed reply as a few text deltas, with no delay between them."""

    def __init__(self, reply: str = REPLY, pieces: int = 4) -> None:
        words = reply.split(" ")
        step = max(1, -(-len(words) // pieces))
        self.deltas = [" ".join(words[i : i + step]) + " " for i in range(0, len(words), step)]
        self.deltas[-1] = self.deltas[-1].rstrip()

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMEvent]:
        for delta in self.deltas:
            yield TextDelta(delta)


class StandInTTS:
    """Real recorded speech at 24 kHz, as long as the text would take to say, in 100 ms chunks."""

    sample_rate = TTS_RATE

    def __init__(self, speech_wav: Path = SPEECH_WAV) -> None:
        self._speech_wav = speech_wav
        self._speech: np.ndarray | None = None  # loaded on first use (warm-up), then shared

    def _audio(self) -> np.ndarray:
        if self._speech is None:
            from agent_runtime.audio.wav import read_wav_mono

            self._speech, _ = read_wav_mono(self._speech_wav, TTS_RATE)
        return self._speech

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        speech = self._audio()
        n = int(len(text) * SECONDS_PER_CHAR * TTS_RATE)
        audio = speech[:n] if n <= len(speech) else np.resize(speech, n)  # wrap if the text is long
        for i in range(0, n, CHUNK_SAMPLES):
            yield audio[i : i + CHUNK_SAMPLES]
