"""Playback truth (S07): only chunks whose mark came back before the `clear` count as heard."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from agent_runtime.call.ledger import PlayoutLedger
from agent_runtime.call.playout import Playout
from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.sim.playback import PlaybackBuffer

pytestmark = pytest.mark.anyio

SENTENCE = "The weather today is sunny with a high of 25 degrees"


def _codec() -> MediaStreamCodec:
    codec = MediaStreamCodec()
    codec.decode(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"], "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    return codec


async def _speak(sentence: str, seconds_per_char: float) -> tuple[Playout, PlayoutLedger, list[dict]]:
    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    codec, ledger = _codec(), PlayoutLedger()
    playout = Playout(send, codec.encode_media, codec.encode_mark, codec.encode_clear, ledger, max_lead_s=1000.0)
    playout.begin(7)
    # Audio whose length is proportional to the text, as TTS gives.
    audio = (np.sin(np.arange(int(len(sentence) * seconds_per_char * 8000)) * 0.3) * 8000).astype(np.int16)
    playout.begin_text(sentence)
    await playout.play(audio)
    playout.end_text()
    await playout.finish()
    return playout, ledger, sent


async def test_s07_history_keeps_exactly_the_heard_words() -> None:
    playout, ledger, sent = await _speak(SENTENCE, 0.05)
    carrier = PlaybackBuffer()
    echoed: list[str] = []
    for message in sent:
        if message["event"] == "media":
            carrier.add_audio(b"\xff" * (len(base64.b64decode(message["media"]["payload"]))))
        else:
            echoed += carrier.add_mark(message["mark"]["name"])
    total = carrier.queued_bytes
    # The carrier plays through the 100 ms chunk that ends "sunny"; then the caller interrupts.
    sunny_end = total * len(SENTENCE[: SENTENCE.index("sunny") + len("sunny ")]) // (len(SENTENCE) + 1)
    for _ in range(-(-sunny_end // 800) * 5):
        echoed += carrier.play_frame()[1]
    for name in echoed:
        ledger.on_mark(name)
    await playout.clear()
    for name in carrier.clear():  # flushed marks come back after the clear, like played ones
        ledger.on_mark(name)
    assert ledger.heard_text(7) == "The weather today is sunny"
    assert ledger.pending(7) == 0


async def test_marks_name_their_generation_and_every_chunk_has_one() -> None:
    _, ledger, sent = await _speak("Hello there, how are you?", 0.06)
    media = [m for m in sent if m["event"] == "media"]
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert len(marks) == len(media) and marks[0] == "g7:c0"
    assert all(len(base64.b64decode(m["media"]["payload"])) <= 800 for m in media)  # ≤ 100 ms per message
    for name in marks:
        ledger.on_mark(name)
    assert ledger.heard_text(7) == "Hello there, how are you?"
    assert ledger.heard_ms(7) == pytest.approx(len("Hello there, how are you?") * 0.06 * 1000, abs=1)


def test_unknown_and_late_marks_are_counted_not_fatal() -> None:
    ledger = PlayoutLedger()
    name = ledger.record(1, 0, 800, 100.0)
    assert ledger.on_mark("g9:c9") is None and ledger.unknown_marks == 1
    ledger.clear(1)
    assert ledger.on_mark(name) is None  # echoed after the clear: flushed, not heard
    assert ledger.heard_text(1) == ""
