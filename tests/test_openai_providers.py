"""OpenAI adapters through the real `openai.AsyncOpenAI` client against the local fake server."""

from __future__ import annotations

import io
import json

import numpy as np
import openai
import pytest
import soundfile as sf
from fakes.openai_server import (
    ChatStream,
    FakeOpenAIServer,
    HttpError,
    SpeechAudio,
    Stall,
    ToolCall,
    text_reply,
    tool_call_reply,
    wav_bytes,
)

from agent_runtime.audio.g711 import ulaw_decode, ulaw_encode
from agent_runtime.audio.resample import StreamResampler
from agent_runtime.audio.wav import parse_wav_header
from agent_runtime.providers.base import TextDelta, ToolCallRequest
from agent_runtime.config import ConfigError
from agent_runtime.providers.factory import build_providers
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.providers.openai_tts import OpenAITTS
from agent_runtime.providers.settings import ProviderSettings
from agent_runtime.providers.speech_bytes import SpeechDecoder

pytestmark = pytest.mark.anyio

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
HANGUP_TOOL = {"type": "function", "function": {"name": "hang_up", "parameters": {}}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(openai_server: FakeOpenAIServer):
    # Closed inside the test's event loop: a client garbage-collected later would try to
    # close its sockets on a loop that no longer exists.
    async with openai_server.client() as c:
        yield c


async def collect(llm: OpenAILLM, messages, tools=None) -> list:
    return [event async for event in llm.stream(messages, tools)]


USER = [{"role": "user", "content": "What's the weather in Paris?"}]


async def test_text_streams_as_deltas(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.push_chat(text_reply(["It is ", "sunny ", "in Paris."]))
    llm = OpenAILLM(client, "gpt-4o-mini", temperature=0.3)
    events = await collect(llm, USER)
    assert events == [TextDelta("It is "), TextDelta("sunny "), TextDelta("in Paris.")]
    (request,) = openai_server.chat_requests()
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["temperature"] == 0.3
    assert "tools" not in request  # omitted, never `[]`


async def test_default_reply_echoes_last_user_message(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    llm = OpenAILLM(client, "gpt-4o-mini")
    events = await collect(llm, [{"role": "user", "content": "book a table"}])
    assert "".join(e.text for e in events) == "You said: book a table"


async def test_tool_call_fragments_assembled(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.push_chat(tool_call_reply(
        [ToolCall("call_A1", "get_weather", ['{"ci', 'ty": "Par', 'is"}'])],
        text=["Let me check. "],
    ))
    llm = OpenAILLM(client, "gpt-4o-mini")
    events = await collect(llm, USER, [WEATHER_TOOL])
    assert events == [
        TextDelta("Let me check. "),
        ToolCallRequest(id="call_A1", name="get_weather", arguments='{"city": "Paris"}'),
    ]
    assert openai_server.chat_requests()[0]["tools"] == [WEATHER_TOOL]


@pytest.mark.parametrize("fragments", [(), None], ids=["empty-string", "no-arguments-key"])
async def test_no_arg_tool_gets_empty_object(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI, fragments
) -> None:
    openai_server.push_chat(tool_call_reply([ToolCall("call_H", "hang_up", fragments)]))
    llm = OpenAILLM(client, "gpt-4o-mini")
    events = await collect(llm, USER, [HANGUP_TOOL])
    assert events == [ToolCallRequest(id="call_H", name="hang_up", arguments="{}")]


async def test_two_parallel_calls(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.push_chat(tool_call_reply([
        ToolCall("call_A1", "lookup_order", ['{"order_', 'id": "A-17"}']),
        ToolCall("call_B2", "transfer_to_human", ['{"queue": "billing"}']),
    ]))
    llm = OpenAILLM(client, "gpt-4o-mini")
    events = await collect(llm, USER, [WEATHER_TOOL])
    assert events == [
        ToolCallRequest("call_A1", "lookup_order", '{"order_id": "A-17"}'),
        ToolCallRequest("call_B2", "transfer_to_human", '{"queue": "billing"}'),
    ]


async def test_tool_round_trip_request_is_valid(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    """The history shape the orchestrator will send is accepted; a broken one gets 400."""
    llm = OpenAILLM(client, "gpt-4o-mini")
    call = {"id": "call_A1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    good = USER + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_A1", "content": "sunny, 21 C"},
    ]
    assert await collect(llm, good, [WEATHER_TOOL])
    with pytest.raises(openai.BadRequestError) as info:
        await collect(llm, good[:-1], [WEATHER_TOOL])  # tool result missing
    assert "call_A1" in info.value.body["message"]
    bad_args = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {**call, "function": {"name": "get_weather", "arguments": '{"ci'}}]},
        {"role": "tool", "tool_call_id": "call_A1", "content": "x"},
    ]
    with pytest.raises(openai.BadRequestError):
        await collect(llm, bad_args, [WEATHER_TOOL])


async def test_http_error_surfaces(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.push_chat(HttpError(429, headers={"retry-after": "1"}))
    llm = OpenAILLM(client, "gpt-4o-mini")
    with pytest.raises(openai.RateLimitError) as info:
        await collect(llm, USER)
    assert info.value.response.headers["retry-after"] == "1"


async def test_stall_times_out_and_break_closes_stream(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.push_chat(Stall(text_reply(["Hel"], usage=False)[:2]))
    llm = OpenAILLM(client.with_options(timeout=0.5), "gpt-4o-mini")
    seen: list = []
    with pytest.raises(openai.APITimeoutError):
        async for event in llm.stream(USER):
            seen.append(event)
    assert seen == [TextDelta("Hel")]

    openai_server.push_chat(ChatStream(text_reply(["a", "b", "c"]), delay=0.05))
    async for event in llm.stream(USER):
        assert event == TextDelta("a")
        break  # barge-in: the generator closes the HTTP stream


async def test_stt_round_trip(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    openai_server.push_transcription("  I'd like to book a table. ")
    stt = OpenAISTT(client)
    pcm = (np.sin(np.arange(8000) / 8) * 3000).astype(np.int16)
    assert await stt.transcribe(pcm, 8000) == "I'd like to book a table."
    (request,) = openai_server.requests
    assert request.body["model"] == "gpt-4o-mini-transcribe"
    assert request.body["language"] == "en"
    assert request.body["file"]["filename"] == "utt.wav"
    wav = request.files["file"]
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert np.array_equal(np.frombuffer(wav[44:], "<i2"), pcm)  # 44-byte PCM header


async def test_tts_odd_chunks_reassembled_exactly(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    pcm = (np.arange(24000 // 2, dtype=np.int64) * 7919 % 65536 - 32768).astype("<i2")
    openai_server.push_speech(SpeechAudio(pcm.tobytes(), chunk_sizes=(1, 1001, 4799, 3, 2)))
    tts = OpenAITTS(client, instructions="Warm and brief.")
    assert tts.sample_rate == 24000
    chunks = [c async for c in tts.synthesize("Hello there.")]
    assert all(c.dtype == np.int16 for c in chunks)
    assert np.array_equal(np.concatenate(chunks), pcm)
    (request,) = openai_server.requests
    assert request.body == {"model": "gpt-4o-mini-tts", "voice": "coral", "input": "Hello there.",
                            "response_format": "pcm", "instructions": "Warm and brief."}


async def test_tts_default_tone(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    tts = OpenAITTS(client)
    audio = np.concatenate([c async for c in tts.synthesize("one two three")])
    assert len(audio) == int(24000 * 0.060 * 3)
    assert np.abs(audio).max() > 1000


async def test_factory_selects_openai_with_key(openai_server: FakeOpenAIServer) -> None:
    settings = ProviderSettings.from_env({
        "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_server.base_url,
        "AGENT_LLM_MODEL": "my-model",
    })
    providers = build_providers(settings)
    assert providers.names == {"llm": "openai:my-model", "stt": "openai:gpt-4o-mini-transcribe",
                               "tts": "openai:gpt-4o-mini-tts/coral"}
    events = [e async for e in providers.llm.stream([{"role": "user", "content": "hi"}])]
    assert "".join(e.text for e in events) == "You said: hi"
    assert openai_server.chat_requests()[0]["model"] == "my-model"
    await providers.llm._client.close()  # the three adapters share this one client


async def test_factory_client_has_no_hidden_retries_and_phone_call_timeouts(openai_server: FakeOpenAIServer) -> None:
    providers = build_providers(ProviderSettings.from_env({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_server.base_url}))
    client = providers.llm._client
    assert providers.stt._client is client and providers.tts._client is client
    assert client.max_retries == 0
    assert client.timeout.connect == 2.0 and 5.0 <= client.timeout.read <= 10.0
    assert client.timeout.write is not None and client.timeout.pool is not None  # nothing left at 600 s
    openai_server.push_chat(HttpError(500), text_reply("too late"))
    with pytest.raises(openai.InternalServerError):
        await collect(providers.llm, USER)
    assert len(openai_server.chat_requests()) == 1  # one request: retrying is the orchestrator's call
    await client.close()


SINE_PEAK = 32767 * 10 ** (-6 / 20)  # −6 dBFS


def _s01_wav(rate: int) -> bytes:
    """S01: 1.000 s of 440 Hz at −6 dBFS in a WAV whose header is 78 bytes (LIST before data)."""
    pcm = np.round(SINE_PEAK * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.int16)
    wav = wav_bytes(pcm, rate)
    assert parse_wav_header(wav).data_offset == 78
    return wav


def _as_the_runtime_sends(chunks: list[np.ndarray], rate: int) -> bytes:
    """TTS audio → 8 kHz μ-law exactly as a call's responder does it."""
    resampler = StreamResampler(rate, 8000)
    return ulaw_encode(np.concatenate([*(resampler.process(c) for c in chunks), resampler.flush()]))


@pytest.mark.parametrize("rate", [24000, 16000], ids=["24k", "16k-rate-from-header"])
@pytest.mark.parametrize("chunk_sizes", [(1001, 4799, 3, 2400, 777), (1, 77, 5, 12000)], ids=["odd", "header-split"])
async def test_s01_a_wav_from_tts_is_audio_not_header(
    openai_server: FakeOpenAIServer, client: openai.AsyncOpenAI, rate: int, chunk_sizes: tuple[int, ...]
) -> None:
    openai_server.push_speech(SpeechAudio(_s01_wav(rate), chunk_sizes=chunk_sizes, media_type="audio/wav"))
    tts = OpenAITTS(client)
    out = _as_the_runtime_sends([c async for c in tts.synthesize("Hello.")], tts.sample_rate)
    assert abs(len(out) - 8000) <= 8
    assert not out.startswith(b"RIFF")
    pcm = ulaw_decode(out).astype(np.float64)
    assert np.abs(pcm[:80]).max() <= SINE_PEAK * 10 ** (1 / 20)  # no click in the first 10 ms
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    assert abs(np.argmax(spectrum) * 8000 / len(pcm) - 440) <= 5


def _decode(data: bytes, sizes: list[int], rate: int = 24000) -> np.ndarray:
    decoder, parts, pos = SpeechDecoder(rate), [], 0
    for size in sizes:
        parts.append(decoder.feed(data[pos : pos + size]))
        pos += size
    parts += [decoder.feed(data[pos:]), decoder.finish()]
    return np.concatenate(parts)


def test_speech_decoder_survives_any_chunk_boundary() -> None:
    pcm = (np.arange(2400, dtype=np.int64) * 7919 % 65536 - 32768).astype(np.int16)
    wav = wav_bytes(pcm, 24000)
    for split in range(1, 90):  # the header (and the first samples) cut at every byte
        assert np.array_equal(_decode(wav, [split, 333]), pcm), split
    sizes = list(np.random.default_rng(7).integers(1, 12, size=len(wav)))
    assert np.array_equal(_decode(wav, sizes), pcm)
    raw = pcm.astype("<i2").tobytes()  # headerless PCM: passed through, odd chunks and all
    assert np.array_equal(_decode(raw, [1, 2, 3, 1001]), pcm)
    assert np.array_equal(_decode(raw, []), pcm)


def test_speech_decoder_stops_at_the_data_chunk_and_decodes_other_formats() -> None:
    pcm = (np.sin(np.arange(2400) / 5) * 9000).astype(np.int16)
    trailing = wav_bytes(pcm, 24000) + b"LIST\x0c\x00\x00\x00INFOISFT\x00\x00\x00\x00"
    assert np.array_equal(_decode(trailing, [100, 1000]), pcm)  # a chunk after `data` is not audio
    buf = io.BytesIO()
    sf.write(buf, pcm.astype(np.float32) / 32768, 24000, format="WAV", subtype="FLOAT")
    decoded = _decode(buf.getvalue(), [7, 50, 300])
    assert len(decoded) == len(pcm) and np.abs(decoded.astype(int) - pcm).max() <= 1


def test_settings_validate_choices() -> None:
    with pytest.raises(ValueError):
        ProviderSettings.from_env({"AGENT_TTS": "festival"})
    assert ProviderSettings.from_env({}).llm == "auto"


def test_explicit_openai_without_key_fails_clearly() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_providers(ProviderSettings(llm="openai", stt="openai", tts="openai"))
    with pytest.raises(ConfigError, match="AGENT_TTS='festival'"):
        ProviderSettings.from_env({"AGENT_TTS": "festival"})


def test_auto_uses_a_local_openai_compatible_server_for_the_llm_only() -> None:
    """OPENAI_BASE_URL alone (Ollama, vLLM, llama.cpp server): the model there, speech offline."""
    local = ProviderSettings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert [local.uses_openai(s) for s in ("llm", "stt", "tts")] == [True, False, False]
    keyed = ProviderSettings.from_env({"OPENAI_API_KEY": "sk-test"})
    assert [keyed.uses_openai(s) for s in ("llm", "stt", "tts")] == [True, True, True]
    offline = ProviderSettings.from_env({})
    assert [offline.uses_openai(s) for s in ("llm", "stt", "tts")] == [False, False, False]
    assert not ProviderSettings.from_env({"OPENAI_API_KEY": "sk-test", "AGENT_STT": "pocketsphinx"}).uses_openai("stt")


def test_fake_validates_strictly() -> None:
    from fakes.openai_server import InvalidRequest, validate_chat_request

    base = {"model": "m", "messages": USER}
    validate_chat_request(base)
    for bad in (
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
        {"model": "m", "messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}]},
        {**base, "tools": []},
        {**base, "stream_options": {"include_usage": True}},
    ):
        with pytest.raises(InvalidRequest):
            validate_chat_request(bad)
    json.dumps(base)
