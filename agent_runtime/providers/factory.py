"""Builds the STT/LLM/TTS set an agent uses from `ProviderSettings`.

Optional engines are checked here, so a missing extra fails at start-up with the
`pip install` line to run, rather than on the first call.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai

from agent_runtime.config import ConfigError
from agent_runtime.providers import standin
from agent_runtime.providers.base import LLM, STT, TTS, Providers
from agent_runtime.providers.settings import ProviderSettings

# Timeouts for a live phone call, where a caller hears every second of waiting:
# - connect 2 s: a healthy endpoint connects in well under 100 ms; a dead one must fail fast so
#   the fallback line is spoken within the never-silent budget, not after the SDK's 600 s;
# - read 8 s: the longest wait for the next bytes, i.e. the time to first token (long prompts
#   on a busy model take several seconds) and then the gap between streamed chunks; a stream
#   silent for longer has stalled and the caller is better served by the fallback;
# - write 5 s: uploading an utterance to STT (a few hundred KB at most);
# - pool 2 s: waiting for a free connection means the process is overloaded.
OPENAI_TIMEOUT = httpx.Timeout(connect=2.0, read=8.0, write=5.0, pool=2.0)
# No hidden SDK retries: the orchestrator retries once itself, quickly and only when it helps,
# and speaks a fallback line meanwhile; two silent SDK retries with backoff would be dead air.
OPENAI_MAX_RETRIES = 0


def build_providers(settings: ProviderSettings) -> Providers:
    use_openai = {stage: settings.uses_openai(stage) for stage in ("llm", "stt", "tts")}
    # One client (one connection pool) shared by the three OpenAI adapters.
    client = _openai_client(settings) if any(use_openai.values()) else None
    names: dict[str, str] = {}

    llm: LLM
    if settings.llm == "standin":
        llm = standin.StandInLLM()
        names["llm"] = "standin"
    elif client is not None and use_openai["llm"]:
        from agent_runtime.providers.openai_llm import OpenAILLM

        llm = OpenAILLM(client, settings.llm_model)
        names["llm"] = f"openai:{settings.llm_model}"
    else:
        from agent_runtime.providers.local_llm import LocalLLM

        _require(LocalLLM.check_available)
        llm = LocalLLM()
        names["llm"] = "local:SmolLM2-135M-Instruct"

    stt: STT
    if settings.stt == "standin":
        stt = standin.StandInSTT()
        names["stt"] = "standin"
    elif client is not None and use_openai["stt"]:
        from agent_runtime.providers.openai_stt import OpenAISTT

        stt = OpenAISTT(client, settings.stt_model)
        names["stt"] = f"openai:{settings.stt_model}"
    else:
        from agent_runtime.providers.pocketsphinx_stt import PocketsphinxSTT

        _require(PocketsphinxSTT.check_available)
        stt = PocketsphinxSTT()
        names["stt"] = "pocketsphinx:en-us"

    tts: TTS
    if settings.tts == "standin":
        tts = standin.StandInTTS()
        names["tts"] = "standin"
    elif client is not None and use_openai["tts"]:
        from agent_runtime.providers.openai_tts import OpenAITTS

        tts = OpenAITTS(client, settings.tts_model, settings.tts_voice)
        names["tts"] = f"openai:{settings.tts_model}/{settings.tts_voice}"
    else:
        from agent_runtime.providers.espeak_tts import EspeakTTS

        _require(EspeakTTS.check_available)
        tts = EspeakTTS()
        names["tts"] = "espeak-ng:en-us"

    return Providers(stt=stt, llm=llm, tts=tts, names=names)


def _openai_client(settings: ProviderSettings) -> openai.AsyncOpenAI:
    api_key = settings.openai_api_key
    if api_key is None:
        if settings.openai_base_url is None:
            raise ConfigError(
                "an OpenAI provider was selected (AGENT_LLM/AGENT_STT/AGENT_TTS=openai) but "
                "OPENAI_API_KEY is not set; set it, or set OPENAI_BASE_URL for a local server"
            )
        api_key = "unused"  # local OpenAI-compatible servers (vLLM, Ollama) ignore the key
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=settings.openai_base_url, max_retries=OPENAI_MAX_RETRIES, timeout=OPENAI_TIMEOUT
    )


def _require(check: Callable[[], None]) -> None:
    """A missing offline engine stops start-up with its `pip install` line (a ConfigError)."""
    try:
        check()
    except RuntimeError as exc:
        raise ConfigError(f"{exc} (or set OPENAI_API_KEY to use OpenAI's engines)") from exc
