"""Fuzz the media-stream decoder: it must never raise, and every frame is counted exactly once."""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.carrier import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaStreamCodec,
    Start,
    Stop,
    TransferAck,
)
SID = "MZ5a1b2c3d4e5f60718293a4b5c6d7e8f9"
_START_BODY = (
    '"accountSid":"AC0f1e2d3c4b5a69788796a5b4c3d2e1f0","streamSid":"%s",'
    '"callSid":"CA9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b","tracks":["inbound"],'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}' % SID
)
# The documented examples (§1.4, §7.3); each field gets mutated below.
EXAMPLES = [
    '{"event":"connected","protocol":"Call","version":"1.0.0"}',
    '{"event":"start","sequenceNumber":"1","start":{%s,'
    '"customParameters":{"tenant":"acme","session_token":"st_7f3c1a90e2"}},"streamSid":"%s"}'
    % (_START_BODY, SID),
    '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1",'
    '"timestamp":"20","payload":"%s"},"streamSid":"%s"}' % ("/" * 216, SID),
    '{"event":"dtmf","sequenceNumber":"3","streamSid":"%s",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}' % SID,
    '{"event":"mark","sequenceNumber":"4","streamSid":"%s","mark":{"name":"r7:c12"}}' % SID,
    '{"event":"stop","sequenceNumber":"5","streamSid":"%s",'
    '"stop":{"accountSid":"AC0f","callSid":"CA9e"}}' % SID,
    '{"event":"start","sequenceNumber":"1","start":{%s,"extensions":["transfer","hangup"],'
    '"from":"+15551230001","to":"+15559870002","direction":"outbound"},"streamSid":"%s"}'
    % (_START_BODY, SID),
    '{"event":"transfer","sequenceNumber":"812","streamSid":"%s",'
    '"transfer":{"status":"accepted"}}' % SID,
    '{"event":"stop","sequenceNumber":"9","streamSid":"%s","stop":{"reason":"transferred"}}' % SID,
]
WRONG_VALUES: list[Any] = [
    None, 0, -1, 1.5, 10**30, True, "", "x", "\u0000", [], [1, "a"], {}, {"a": None},
]


def is_valid_event(ev: object) -> bool:
    """A decoded event is well typed (the decoder never passes garbage downstream)."""
    if isinstance(ev, Media):
        return (
            isinstance(ev.payload, bytes)
            and isinstance(ev.timestamp_ms, int)
            and ev.timestamp_ms >= 0
            and isinstance(ev.chunk, int)
            and ev.chunk >= 0
            and isinstance(ev.track, str)
        )
    if isinstance(ev, Start):
        return (
            all(isinstance(x, str) for x in (ev.call_sid, ev.account_sid, ev.encoding))
            and isinstance(ev.stream_sid, str)
            and bool(ev.stream_sid)
            and all(isinstance(t, str) for t in ev.tracks)
            and all(isinstance(k, str) for k in ev.custom_parameters)
            and all(isinstance(v, str) for v in ev.custom_parameters.values())
            and isinstance(ev.sample_rate, int)
            and isinstance(ev.channels, int)
            and all(isinstance(e, str) for e in ev.extensions)
            and all(v is None or isinstance(v, str) for v in (ev.from_, ev.to, ev.direction))
        )
    if isinstance(ev, Connected):
        return isinstance(ev.protocol, str) and isinstance(ev.version, str)
    if isinstance(ev, Dtmf):
        return ev.digit in set("0123456789*#ABCD")
    if isinstance(ev, Mark):
        return isinstance(ev.name, str)
    if isinstance(ev, Stop):
        return ev.reason is None or isinstance(ev.reason, str)
    if isinstance(ev, TransferAck):
        return isinstance(ev.status, str) and (ev.error is None or isinstance(ev.error, str))
    return False


class Harness:
    def __init__(self) -> None:
        self.codec = MediaStreamCodec()
        self.codec.decode(EXAMPLES[1])  # a start, so later frames look like a live stream
        self.frames = 1
        self.events = 1

    def feed(self, frame: Any) -> object:
        ev = self.codec.decode(frame)  # must not raise, whatever the input
        self.frames += 1
        if ev is not None:
            self.events += 1
            assert is_valid_event(ev), ev
        return ev

    def check_counters(self) -> None:
        c = self.codec
        assert c.decoded + c.malformed + c.ignored == self.frames
        assert c.decoded == self.events
        assert sum(c.malformed_by_reason.values()) == c.malformed


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.check_counters()


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def test_random_bytes(harness: Harness) -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        frame = rng.randbytes(rng.randint(0, 600))
        harness.feed(frame if rng.random() < 0.5 else frame.decode("latin-1"))
    assert harness.codec.malformed >= 2900


def test_truncated_examples_at_every_cut(harness: Harness) -> None:
    for example in EXAMPLES:
        for cut in range(len(example)):
            assert harness.feed(example[:cut]) is None
    assert harness.codec.decoded == 1  # only the harness's own start


def test_wrong_types_in_every_field(harness: Harness) -> None:
    for example in EXAMPLES:
        doc = json.loads(example)
        for path in paths(doc):
            for value in WRONG_VALUES:
                harness.feed(json.dumps(replaced(doc, path, value)))
        for key in doc:  # and every field missing
            harness.feed(json.dumps({k: v for k, v in doc.items() if k != key}))


def test_payload_edge_cases(harness: Harness) -> None:
    rng = random.Random(99)
    template = json.loads(EXAMPLES[2])
    huge = base64.b64encode(rng.randbytes(750_000)).decode()  # ~1 MB of base64
    assert harness.feed(json.dumps(replaced(template, ("media", "payload"), huge))) is None
    assert harness.codec.malformed_by_reason.get("oversize") == 1
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\t@%\\\""
    for _ in range(2000):
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        harness.feed(json.dumps(replaced(template, ("media", "payload"), junk)))
    for n in range(0, 400, 7):  # valid base64 of every length decodes to the same bytes
        raw = rng.randbytes(n)
        good = json.dumps(replaced(template, ("media", "payload"), base64.b64encode(raw).decode()))
        ev = harness.feed(good)
        assert isinstance(ev, Media) and ev.payload == raw


def test_non_utf8_and_non_text(harness: Harness) -> None:
    rng = random.Random(7)
    for example in EXAMPLES:
        raw = example.encode()
        for _ in range(50):
            i = rng.randrange(len(raw))
            harness.feed(raw[:i] + bytes([rng.choice([0x80, 0xC0, 0xFF, 0xED])]) + raw[i + 1 :])
        harness.feed(example.replace("inbound", "in\ud800bound"))  # lone surrogate in a str
    for odd in [None, 5, 1.5, [], {}, object(), bytearray(b"{}"), memoryview(b"[]")]:
        harness.feed(odd)


def test_deeply_nested_json(harness: Harness) -> None:
    for depth in (10, 100, 1000, 10_000, 50_000):
        harness.feed("[" * depth + "]" * depth)
        harness.feed('{"a":' * depth + "1" + "}" * depth)
        nested = "[" * depth + "]" * depth
        harness.feed('{"event":"media","deep":%s}' % nested)
        harness.feed('{"event":"zzz","deep":%s}' % nested)
        harness.feed('{"event":"mark","mark":{"name":"x","deep":%s}}' % nested)


def test_random_mutations_of_valid_frames(harness: Harness) -> None:
    rng = random.Random(2024)
    printable = '{}[]",:0123456789aeEnlrstu-+. \\'
    for _ in range(5000):
        frame = list(rng.choice(EXAMPLES))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randrange(len(frame))
            if op < 0.4:
                frame[i] = rng.choice(printable)
            elif op < 0.7:
                del frame[i]
            else:
                frame.insert(i, rng.choice(printable))
        harness.feed("".join(frame))


def test_unknown_events_are_ignored_not_malformed(harness: Harness) -> None:
    rng = random.Random(5)
    before = harness.codec.malformed
    for i in range(500):
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(1, 12)))
        if name in {"connected", "start", "media", "dtmf", "mark", "stop", "transfer"}:
            continue
        harness.feed(json.dumps({"event": name, "sequenceNumber": str(i + 2), name: {"x": [i]}}))
    assert harness.codec.malformed == before
    assert harness.codec.ignored > 400


# ------------------------------------------------------------------ through a live call


@pytest.mark.anyio
async def test_garbage_frames_in_a_live_call_are_counted_and_the_call_goes_on(openai_server, openai_client) -> None:  # noqa: ANN001
    """Bad frames from the carrier, mid-call, through the real server: none ends the call."""
    from agent_runtime.providers.base import Providers
    from agent_runtime.providers.espeak_tts import EspeakTTS
    from agent_runtime.providers.openai_llm import OpenAILLM
    from agent_runtime.providers.openai_stt import OpenAISTT
    from agent_runtime.sim.caller import CallScript, Utterance, place_call
    from callkit import SECRET, caller_audio, live_agent
    from fakes.openai_server import text_reply

    pytest.importorskip("espeakng_loader")
    openai_server.push_transcription("What time do you open tomorrow?")
    openai_server.push_chat(text_reply("We open at nine."))
    huge = '{"event":"media","streamSid":"%s","media":{"chunk":"1","timestamp":"0","payload":"%s"}}' % (SID, "A" * 200_000)
    garbage: list[str | bytes] = [
        "{not json", '{"event":"media"', "[]", "null", '"media"',
        '{"event":"media","media":{"chunk":"1","timestamp":"20","payload":"***not base64***"}}',
        '{"event":"media","media":{"chunk":[],"timestamp":{},"payload":7}}',
        '{"event":"dtmf","dtmf":{"digit":"Z"}}', '{"event":"mark","mark":{}}',
        '{"event":"future_thing","payload":1}', huge, b"\x00\xffbinary frame", b"",
    ]
    script = CallScript(utterances=[Utterance(caller_audio(), gap_s=0.4)], max_duration_s=30,
                        raw_frames=[(0.3 + 0.02 * i, frame) for i, frame in enumerate(garbage)])
    providers = Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call(timeout_s=1.0)
    assert record.end_reason == "completed" and result.close_code == 1000
    assert len(result.turn_latencies_ms) == 1  # the caller was still heard and answered
    assert record.transcript[-1] == ("assistant", "We open at nine.")
    # Every garbage frame but the unknown event (ignored for forward compatibility) is counted.
    assert record.malformed_frames == len(garbage) - 1
