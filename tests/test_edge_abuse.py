"""Hostile input at the edge (found by trying to break a running server): oversized bodies are
refused before they are read, odd signatures and bodies are 4xx not 500, a signed event cannot
read another call's transfer, one call id has one stream, a stream has one `start`."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.carrier.signatures import SignatureError, sign, sign_stream_url, verify
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from callkit import SECRET, live_agent

pytestmark = pytest.mark.anyio
SID = "MZ0123456789abcdef0123456789abcdef"


def standins() -> Providers:
    return Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())


def _event(data: object) -> bytes:
    return json.dumps({"id": "evt_x", "type": "call.answered", "created": int(time.time()), "data": data}).encode()


def _signed(body: bytes) -> dict[str, str]:
    return {"Rozper-Signature": sign(body, [SECRET], int(time.time())), "Content-Type": "application/json"}


def test_a_huge_timestamp_is_a_malformed_signature_not_an_overflow() -> None:
    for digits in (13, 400, 5000):
        with pytest.raises(SignatureError):
            verify(f"t={'9' * digits},v1=00", b"{}", [SECRET], time.time())


async def test_bodies_over_the_limit_are_refused_before_they_are_read() -> None:
    async def endless():  # a chunked upload that never ends: the server must stop reading
        for _ in range(10_000):
            yield b"x" * 65536

    async with live_agent(standins()) as agent, httpx.AsyncClient(timeout=30) as http:
        base = agent.config.base_url
        declared = await http.post(f"{base}/rozper/voice", content=b"x" * (200 * 1024))
        streamed = await http.post(f"{base}/rozper/voice", content=endless())
        after = await http.post(f"{base}/rozper/after-stream/CA_1", content=endless())
        hook = await http.post(f"{base}/rozper/webhooks", content=endless())
    for response in (declared, streamed, after, hook):
        assert response.status_code == 413 and response.json()["error"]["code"] == "bad_request"


async def test_twilio_requests_without_a_signature_are_refused_before_parsing() -> None:
    async with live_agent(standins(), twilio_auth_token="tw_token_0123456789") as agent, httpx.AsyncClient() as http:
        multipart = await http.post(f"{agent.config.base_url}/twilio/voice", files={"f": ("a.bin", b"x" * 100_000)})
    assert multipart.status_code == 403


async def test_signed_but_malformed_call_connect_is_a_4xx() -> None:
    async with live_agent(standins()) as agent, httpx.AsyncClient() as http:
        answers = {}
        for name, data in {"list": [1, 2], "string": "call", "long id": {"call_id": "C" * 500},
                           "path id": {"call_id": "../../rozper/voice?x=1#"}}.items():
            body = _event(data)
            answers[name] = await http.post(agent.connect_url, content=body, headers=_signed(body))
    assert answers["list"].status_code == answers["string"].status_code == 400
    assert answers["long id"].status_code == answers["path id"].status_code == 422
    assert all(a.json()["error"]["code"] in ("bad_request", "invalid_param") for a in answers.values())


async def test_a_signed_event_cannot_read_another_calls_transfer() -> None:
    async with live_agent(standins()) as agent, httpx.AsyncClient() as http:
        body = _event({"call_id": "CA_mine"})
        other = await http.post(f"{agent.config.base_url}/rozper/after-stream/CA_theirs", content=body, headers=_signed(body))
        mine = await http.post(f"{agent.config.base_url}/rozper/after-stream/CA_mine", content=body, headers=_signed(body))
    assert other.status_code == 400
    assert mine.status_code == 200 and mine.json()["instructions"][0]["verb"] == "hangup"


async def _open_stream(agent, token: str):  # noqa: ANN001, ANN202
    url = agent.config.media_url
    ws = await connect(url, additional_headers={"Rozper-Signature": sign_stream_url(url, [SECRET], int(time.time()))})
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.1.0"}))
    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": {
        "streamSid": SID, "accountSid": "AC1", "callSid": "CA_dup", "tracks": ["inbound"],
        "customParameters": {"session_token": token},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    return ws


async def test_one_call_id_has_one_live_stream() -> None:
    async with live_agent(standins()) as agent, httpx.AsyncClient() as http:
        tokens = []
        for _ in range(2):  # the same call-connect delivered twice (a carrier retry): two tokens
            body = _event({"call_id": "CA_dup"})
            answer = await http.post(agent.connect_url, content=body, headers=_signed(body))
            tokens.append(answer.json()["instructions"][0]["parameters"]["session_token"])
        first = await _open_stream(agent, tokens[0])
        await first.recv()  # the greeting is playing: the call is live
        second = await _open_stream(agent, tokens[1])
        await second.wait_closed()
        assert second.close_code == 1008
        assert list(agent.runtime.active_calls) == ["CA_dup"]
        await first.close()


def test_a_second_start_is_malformed_and_changes_nothing() -> None:
    codec = MediaStreamCodec()
    start = {"event": "start", "start": {"streamSid": SID, "accountSid": "AC", "callSid": "CA", "tracks": ["inbound"],
                                         "extensions": ["hangup"],
                                         "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    assert codec.decode(json.dumps(start)) is not None
    again = json.loads(json.dumps(start))
    again["start"].update(streamSid="MZ_other", extensions=["transfer"])
    assert codec.decode(json.dumps(again)) is None
    assert codec.malformed_by_reason == {"second_start": 1}
    assert codec.stream_sid == SID and codec.extensions == frozenset({"hangup"})
