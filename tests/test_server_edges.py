"""The server refuses what is not signed: call-connect (Rozper and Twilio, behind a proxy too), the
media upgrade, the session token; --allow-unsigned never weakens a configured secret; max_calls
holds under concurrent upgrades; no secret shows in the config's repr."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_runtime.carrier.signatures import sign, sign_stream_url, twilio_signature
from agent_runtime.config import ALLOW_UNSIGNED_HELP, ConfigError, ServerConfig
from agent_runtime.handoff.store import Handoff, SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent

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


# ---- Twilio: X-Twilio-Signature over public URL + path + query, every form value ----

TWILIO_TOKEN = "twilio_auth_token_0123456789abcdef"
PUBLIC = "https://agent.example.com"  # what Twilio is configured with; the proxy forwards to 127.0.0.1
FORM = {"CallSid": "CA_tw_1", "From": "+15551230001", "To": "+15559870002", "Direction": "inbound",
        "AccountSid": "AC_tw", "StirPassportToken": ["tok_b", "tok_a"]}  # a repeated name: both values are signed


def _standins() -> Providers:
    return Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())


def _twiml(response: httpx.Response) -> ET.Element:
    assert response.headers["content-type"].startswith("application/xml"), response.text
    return ET.fromstring(response.text.split("?>", 1)[1])


async def test_twilio_voice_verifies_the_public_url_with_its_query_and_every_value(tmp_path: Path) -> None:
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    await store.enqueue(Handoff(id="hnd_tw", call_id="CA_tw_1", queue="support", reason="r", summary="s",
                               caller="+15551230001", callee="+15559870002", last_utterance="a person please"))
    async with live_agent(_standins(), queue_store=store, twilio_auth_token=TWILIO_TOKEN, public_url=PUBLIC) as agent:
        internal = f"http://127.0.0.1:{agent.config.port}"  # where the proxy delivers; not what Twilio signed

        async def post(path: str, signed_url: str | None, token: str = TWILIO_TOKEN) -> httpx.Response:
            headers = {} if signed_url is None else {"X-Twilio-Signature": twilio_signature(signed_url, FORM, token)}
            async with httpx.AsyncClient() as http:
                return await http.post(internal + path, data=FORM, headers=headers)

        good = await post("/twilio/voice?tenant=acme", PUBLIC + "/twilio/voice?tenant=acme")
        without_query = await post("/twilio/voice?tenant=acme", PUBLIC + "/twilio/voice")
        internal_url = await post("/twilio/voice?tenant=acme", internal + "/twilio/voice?tenant=acme")
        wrong_token = await post("/twilio/voice?tenant=acme", PUBLIC + "/twilio/voice?tenant=acme", "not_the_token")
        unsigned = await post("/twilio/voice?tenant=acme", None)
        plain = await post("/twilio/voice", PUBLIC + "/twilio/voice")  # a number configured with no query
        after = await post("/twilio/after-stream/CA_tw_1", PUBLIC + "/twilio/after-stream/CA_tw_1")
        after_forged = await post("/twilio/after-stream/CA_tw_1", PUBLIC + "/twilio/after-stream/CA_other")

    assert good.status_code == 200 and plain.status_code == 200
    root = _twiml(good)
    connect_el, stream = root.find("Connect"), root.find("Connect/Stream")
    assert connect_el is not None and stream is not None
    assert stream.get("url") == "wss://agent.example.com/media"  # built from the public URL
    assert connect_el.get("action") == PUBLIC + "/twilio/after-stream/CA_tw_1"
    parameters = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert parameters["session_token"].startswith("st_") and parameters["call_id"] == "CA_tw_1"
    for refused in (without_query, internal_url, wrong_token, unsigned, after_forged):
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert _twiml(after).findtext("Enqueue") == "support"  # the waiting handoff, found in the queue store


# ---- --allow-unsigned never weakens a configured secret ----

async def _unsigned_upgrade(url: str) -> int:
    """101 when the stream upgrade is accepted, else the refusal's HTTP status."""
    try:
        async with connect(url):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_allow_unsigned_has_no_effect_once_a_secret_is_configured(tmp_path: Path) -> None:
    body = _connect_body()
    async with live_agent(_standins(), allow_unsigned=True) as agent:  # SECRET is configured too
        unsigned_connect = await _instructions(agent.connect_url, body, {})
        upgrade = await _unsigned_upgrade(agent.config.media_url)
        unsigned_after = await _instructions(f"{agent.config.base_url}/rozper/after-stream/CA_edge", b"{}", {})
    assert unsigned_connect.status_code == 401 and unsigned_after.status_code == 401
    assert upgrade == 403
    assert "only when no carrier secret is configured" in ALLOW_UNSIGNED_HELP

    # With no secret at all, the development flag still works (the session token is still required).
    config = ServerConfig(port=0, allow_unsigned=True, data_dir=str(tmp_path))
    assert config.unsigned_allowed and not ServerConfig(port=0, allow_unsigned=True, signing_secrets=("s",)).unsigned_allowed


# ---- max_calls: a slot is taken at the upgrade ----

async def test_max_calls_counts_streams_that_have_not_started_yet() -> None:
    async with live_agent(_standins(), max_calls=1) as agent:
        url = agent.config.media_url

        def signed() -> dict[str, str]:
            return {"Rozper-Signature": sign_stream_url(url, [SECRET], int(time.time()))}

        async def second_upgrade() -> int:
            try:
                async with connect(url, additional_headers=signed()):
                    return 101
            except InvalidStatus as refused:
                return refused.response.status_code

        async with connect(url, additional_headers=signed()):  # upgraded; no `start` yet, so no call record
            assert not agent.runtime.active_calls
            concurrent = [await second_upgrade(), await second_upgrade()]
        with anyio.fail_after(5):  # the first stream's slot is released when it ends
            while agent.runtime.stream_slots:
                await anyio.sleep(0.02)
        script = CallScript(utterances=[Utterance(caller_audio())], hangup_after_s=0.5, max_duration_s=30)
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
    assert concurrent == [403, 403]
    assert record.end_reason == "completed" and result.greeting_latency_ms is not None  # a new call ran
    assert agent.runtime.stream_slots == 0


# ---- secrets never in repr ----

def test_config_repr_shows_no_secret() -> None:
    secrets = ["rzp_whsec_repr_0123456789", "twilio_repr_token_0123456789", "api_key_repr_0123456789", "whsec_out_repr_0123456789"]
    config = ServerConfig(signing_secrets=(secrets[0],), twilio_auth_token=secrets[1],
                          api_keys=((secrets[2], frozenset({"queues.read"})),),
                          webhook_urls=("https://hooks.example/h",), webhook_secrets=(secrets[3],))
    for text in (repr(config), str(config), f"{config}"):
        assert "ServerConfig(" in text and "max_calls=200" in text  # still a useful repr
        assert not any(secret in text for secret in secrets), text
