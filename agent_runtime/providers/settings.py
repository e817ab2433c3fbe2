"""Which engines to use, read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

from agent_runtime.config import ConfigError

# "standin": zero-latency fixed replies for benchmarking the runtime (providers/standin.py).
LLMChoice = Literal["auto", "openai", "local", "standin"]
STTChoice = Literal["auto", "openai", "pocketsphinx", "standin"]
TTSChoice = Literal["auto", "openai", "espeak", "standin"]

DEFAULT_LLM_MODEL = "gpt-4o-mini"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Which engine each stage uses. "auto" picks, per stage:

    - LLM: the OpenAI-compatible endpoint when OPENAI_API_KEY or OPENAI_BASE_URL is set (a local
      vLLM, Ollama or llama.cpp server needs only the URL), else the offline model;
    - STT and TTS: the endpoint's audio API when OPENAI_API_KEY is set (a URL alone means a local
      server, which has none), else pocketsphinx and eSpeak NG.
    Explicit values: AGENT_LLM=openai|local, AGENT_STT=openai|pocketsphinx, AGENT_TTS=openai|espeak,
    and standin for all three (benchmarks).
    """

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    llm_model: str = DEFAULT_LLM_MODEL
    stt_model: str = "gpt-4o-mini-transcribe"
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str = "coral"
    llm: LLMChoice = "auto"
    stt: STTChoice = "auto"
    tts: TTSChoice = "auto"

    def __post_init__(self) -> None:
        # Validate once here so a typo in AGENT_TTS fails at start-up, not on the first call.
        for name, kind in (("llm", LLMChoice), ("stt", STTChoice), ("tts", TTSChoice)):
            value = getattr(self, name)
            if value not in get_args(kind):
                raise ConfigError(f"AGENT_{name.upper()}={value!r}: use one of {', '.join(get_args(kind))}")

    def uses_openai(self, stage: str) -> bool:
        """Whether `stage` ("llm", "stt", "tts") goes to the OpenAI-compatible endpoint (see above)."""
        choice = getattr(self, stage)
        if choice != "auto":
            return choice == "openai"
        if stage == "llm":
            return self.openai_api_key is not None or self.openai_base_url is not None
        return self.openai_api_key is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ProviderSettings:
        """Reads OPENAI_API_KEY, OPENAI_BASE_URL, AGENT_LLM_MODEL, AGENT_LLM/STT/TTS."""

        def get(key: str) -> str | None:
            value = environ.get(key, "").strip()
            return value or None

        return cls(
            openai_api_key=get("OPENAI_API_KEY"),
            openai_base_url=get("OPENAI_BASE_URL"),
            llm_model=get("AGENT_LLM_MODEL") or DEFAULT_LLM_MODEL,
            llm=cast(LLMChoice, (get("AGENT_LLM") or "auto").lower()),
            stt=cast(STTChoice, (get("AGENT_STT") or "auto").lower()),
            tts=cast(TTSChoice, (get("AGENT_TTS") or "auto").lower()),
        )
