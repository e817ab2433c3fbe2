"""The three provider interfaces a call uses: speech-to-text, the language model, text-to-speech.

Adapters are small and live one per file. Every method is async; an adapter that wraps a
CPU-heavy engine runs it in a worker thread so the event loop keeps reading frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class STT(Protocol):
    """Transcribes one finished caller utterance."""

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        """`pcm` is mono int16 at `sample_rate`; returns the text (may be empty)."""
        ...


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply text as the model streams it."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """One complete tool call, assembled from its streamed fragments."""

    id: str
    name: str
    arguments: str  # the raw JSON string exactly as the model produced it


LLMEvent = TextDelta | ToolCallRequest


class LLM(Protocol):
    """Streams a reply to a chat history (OpenAI message dicts)."""

    def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMEvent]: ...


class TTS(Protocol):
    """Streams speech for one piece of text as mono int16 chunks at `sample_rate`."""

    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[np.ndarray]: ...


@dataclass(slots=True)
class Providers:
    """The engines one agent uses; built once per runtime and shared by its calls."""

    stt: STT
    llm: LLM
    tts: TTS
    names: dict[str, str] = field(default_factory=dict)  # kind -> human-readable engine name


async def warm_up(providers: Providers) -> None:
    """Loads models before the first call, so the first caller does not pay for it."""
    load = getattr(providers.llm, "load", None)
    if load is not None:
        await load()
    await providers.stt.transcribe(np.zeros(1600, dtype=np.int16), 8000)
    async for _ in providers.tts.synthesize("ok"):
        pass
