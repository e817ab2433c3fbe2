"""The server refuses what is not signed: call-connect, the media upgrade, the session token."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_runtime.carrier.signatures import sign, sign_stream_url
from agent_runtime.config import ConfigError, ServerConfig
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from callkit import SECRET, live_agent

pytestmark = pytest.mark.anyio


@pytest.fixture
def providers(openai_client) -> Providers:  # noqa: ANN001
    return Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())


def _connect_body() -> bytes:
    event = {"id": "evt_1", "type": "call.answered", "created": int(time.time()),
             "data": {"call_id": "CA_edge", "from": "+15551230001", "to": "+15559870002"}}
    return json.dumps(event).encode()


async def _instructions(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers=headers)


async def test_call_connect_requires_a_valid_signature(providers) -> None:  # noqa: ANN001
    body = _connect_body()
    async with live_agent(providers) as agent:
        missing = await _instructions(agent.connect_url, body, {})
        forged = await _instructions(agent.connect_url, body, {"Rozper-Signature": sign(body, ["wrong"], int(time.time()))})
        stale = await _instructions(agent.connect_url, body, {"Rozper-Signature": sign(body, [SECRET], int(time.time()) - 301)})
        tampered = await _instructions(agent.connect_url, body + b" ", {"Rozper-Signature": sign(body, [SECRET], int(time.time()))})
        good = await _instructions(agent.connect_url, body, {"Rozper-Signature": sign(body, [SECRET], int(time.time()))})
    for response in (missing, forged, stale, tampered):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert good.status_code == 200
    stream = good.json()["instructions"][0]
    assert stream["verb"] == "connect_stream" and stream["url"].endswith("/media")
    assert stream["parameters"]["session_token"].startswith("st_")


async def test_media_upgrade_and_session_token_are_checked(providers) -> None:  # noqa: ANN001
    body = _connect_body()
    async with live_agent(providers) as agent:
        good = await _instructions(agent.connect_url, body, {"Rozper-Signature": sign(body, [SECRET], int(time.time()))})
        stream = good.json()["instructions"][0]
        url = stream["url"]
        # No signature, then a forged one: refused before the upgrade completes (HTTP 403).
        for headers in ({}, {"Rozper-Signature": sign_stream_url(url, ["wrong"], int(time.time()))}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403
        # Signed upgrade but a wrong session token: closed with 1008 after `start`.
        signed = {"Rozper-Signature": sign_stream_url(url, [SECRET], int(time.time()))}
        async with connect(url, additional_headers=signed) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
                "streamSid": "MZ1", "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"],
                "customParameters": {"session_token": "st_forged"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
        assert not agent.runtime.active_calls and agent.runtime.calls_ended == 0


def test_missing_secret_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="ROZPER_SIGNING_SECRETS"):
        ServerConfig()
    with pytest.raises(ConfigError, match="AGENT_PUBLIC_URL"):
        ServerConfig(public_url="ftp://x", allow_unsigned=True)
    with pytest.raises(ConfigError, match="AGENT_PORT"):
        ServerConfig.from_env({"AGENT_PORT": "eighty", "ROZPER_SIGNING_SECRETS": "s"})
