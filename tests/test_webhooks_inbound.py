"""Inbound Rozper webhooks at `POST /rozper/webhooks` on the real server over real HTTP:
signature on the raw body first, then persistent de-duplication, then the call record."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime.agent.definition import Agent, CallContext
from agent_runtime.carrier.signatures import sign
from agent_runtime.config import ServerConfig
from agent_runtime.handoff.store import Handoff, QueueStore, SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.runtime import CallRecord, Runtime
from agent_runtime.server.run import bind, running_server
from agent_runtime.webhooks.inbound import InboundWebhooks
from agent_runtime.webhooks.seen import SeenEvents

pytestmark = pytest.mark.anyio
NEW = "rzp_whsec_9f8c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"
OLD = "rzp_whsec_00112233445566778899aabbccddeeff"
CALL_ID = "CA_01JXYZ"


def _event(event_type: str = "call.completed", event_id: str = "evt_01JABCDEF", **data: Any) -> bytes:
    body = {"id": event_id, "type": event_type, "created": int(time.time()),
            "data": {"call_id": CALL_ID, "status": "completed", "duration_s": 42, **data}}
    return json.dumps(body, separators=(",", ":")).encode()


@asynccontextmanager
async def agent_server(
    data_dir: Path, secrets: tuple[str, ...] = (NEW, OLD), queue_store: QueueStore | None = None,
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    sock = bind("127.0.0.1", 0)
    config = ServerConfig(host="127.0.0.1", port=sock.getsockname()[1], signing_secrets=secrets,
                          allow_unsigned=not secrets, data_dir=str(data_dir))
    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    runtime = Runtime(config, Agent.from_prompts(), providers, queue_store=queue_store)
    context = CallContext(call_id=CALL_ID, caller="+15551230001", callee="+15559870002", direction="inbound")
    runtime.finished_calls.append(CallRecord(call_id=CALL_ID, context=context, started_at=0.0, end_reason="completed"))
    async with running_server(runtime, sock), httpx.AsyncClient(base_url=config.base_url, timeout=10) as http:
        yield runtime, http


async def post(http: httpx.AsyncClient, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"Rozper-Signature": header} if header is not None else {})}
    return await http.post("/rozper/webhooks", content=body, headers=headers)


def _refused(response: httpx.Response) -> bool:
    """401 in Rozper's full envelope, with no detail about what failed."""
    error = response.json()["error"]
    return response.status_code == 401 and error == {
        "code": "unauthorized", "message": "signature verification failed", "request_id": error["request_id"],
        "param_errors": []} and error["request_id"].startswith("req_") and response.headers["request-id"] == error["request_id"]


async def test_valid_event_updates_the_call_record_once(tmp_path: Path) -> None:
    async with agent_server(tmp_path) as (runtime, http):
        body = _event()
        ok = await post(http, body, sign(body, [NEW], int(time.time())))
        replay = await post(http, body, sign(body, [NEW], int(time.time())))  # Rozper's retry: a fresh t
        record = runtime.finished_calls[-1]
    assert ok.status_code == 200 and ok.json() == {"received": True}
    assert replay.status_code == 200 and replay.json() == {"received": True, "duplicate": True}
    assert [t for t, _ in record.carrier_events] == ["call.completed"]  # handled once
    assert record.carrier_events[0][1]["duration_s"] == 42


async def test_recording_ready_stores_the_url_on_the_call(tmp_path: Path) -> None:
    url = "https://rec.rozper.example/r/RE_1?sig=abc"
    async with agent_server(tmp_path) as (runtime, http):
        body = _event("recording.ready", "evt_rec1", recording_id="RE_1", url=url, format="wav")
        response = await post(http, body, sign(body, [NEW, OLD], int(time.time())))
        unknown = _event("recording.ready", "evt_rec2", call_id="CA_other", url=url)
        other = await post(http, unknown, sign(unknown, [NEW], int(time.time())))
    assert response.status_code == 200 and runtime.finished_calls[-1].recording_url == url
    assert other.status_code == 200  # a call this process does not know: accepted, nothing to update


@pytest.mark.parametrize("case", ["stale", "future", "forged", "wrong_secret", "missing", "garbage", "uppercase"])
async def test_bad_signatures_are_refused_before_parsing(tmp_path: Path, case: str) -> None:
    body, now = _event(), int(time.time())
    header: str | None = {
        "stale": sign(body, [NEW], now - 301),
        "future": sign(body, [NEW], now + 301),
        "forged": sign(body, [NEW], now),
        "wrong_secret": sign(body, ["rzp_whsec_attacker"], now),
        "missing": None,
        "garbage": "not a signature",
        "uppercase": sign(body, [NEW], now).upper().replace("T=", "t=").replace("V1=", "v1="),
    }[case]
    sent = body.replace(b'"duration_s":42', b'"duration_s":43') if case == "forged" else body
    async with agent_server(tmp_path) as (runtime, http):
        response = await post(http, sent, header)
        good = await post(http, body, sign(body, [NEW], now))  # the genuine event is still handled
    assert _refused(response)
    assert good.status_code == 200 and good.json() == {"received": True}
    assert len(runtime.finished_calls[-1].carrier_events) == 1


async def test_window_edges_and_the_second_rotating_secret(tmp_path: Path) -> None:
    now = int(time.time())
    async with agent_server(tmp_path, secrets=(NEW, OLD)) as (_, http):
        answers = []
        for i, (secrets, t) in enumerate([([OLD], now), ([NEW], now - 290), ([NEW], now + 290)]):
            body = _event(event_id=f"evt_edge{i}")
            answers.append((await post(http, body, sign(body, secrets, t))).status_code)
    assert answers == [200, 200, 200]
    async with agent_server(tmp_path, secrets=(OLD,)) as (_, http):  # only the old secret configured
        body = _event(event_id="evt_rot")
        rotation = await post(http, body, sign(body, [NEW, OLD], now))
        single = await post(http, _event(event_id="evt_rot2"), sign(_event(event_id="evt_rot2"), [NEW], now))
    assert rotation.status_code == 200 and _refused(single)


async def test_a_replay_after_restart_is_still_a_duplicate(tmp_path: Path) -> None:
    body = _event(event_id="evt_restart")
    async with agent_server(tmp_path) as (first, http):
        assert (await post(http, body, sign(body, [NEW], int(time.time())))).status_code == 200
    async with agent_server(tmp_path) as (second, http):  # a new process on the same data_dir
        replay = await post(http, body, sign(body, [NEW], int(time.time())))
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert len(first.finished_calls[-1].carrier_events) == 1 and second.finished_calls[-1].carrier_events == []


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"id":"evt_x"}', b'{"id":7,"type":"call.ringing"}', b"\xff\xfe"])
async def test_malformed_body_with_a_valid_signature_is_400(tmp_path: Path, body: bytes) -> None:
    async with agent_server(tmp_path) as (_, http):
        response = await post(http, body, sign(body, [NEW], int(time.time())))
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


async def test_no_configured_secret_fails_closed(tmp_path: Path) -> None:
    body = _event()
    async with agent_server(tmp_path, secrets=()) as (runtime, http):  # --allow-unsigned development mode
        unsigned = await post(http, body, None)
        signed = await post(http, body, sign(body, [NEW], int(time.time())))
    assert _refused(unsigned) and _refused(signed) and runtime.finished_calls[-1].carrier_events == []


async def test_a_failed_handler_releases_the_event_for_the_retry(tmp_path: Path) -> None:
    handled: list[str] = []

    async def flaky(event_type: str, event: dict[str, Any]) -> None:
        handled.append(event["id"])
        if len(handled) == 1:
            raise RuntimeError("database down")

    inbound = InboundWebhooks([NEW], SeenEvents(tmp_path / "seen.sqlite3"), flaky)
    body = _event()
    first = await inbound.receive(sign(body, [NEW], int(time.time())), body)
    retry = await inbound.receive(sign(body, [NEW], int(time.time())), body)
    again = await inbound.receive(sign(body, [NEW], int(time.time())), body)
    assert first[0] == 500 and first[1]["error"]["code"] == "server_error"
    assert retry == (200, {"received": True}) and again[1]["duplicate"] is True
    assert handled == ["evt_01JABCDEF", "evt_01JABCDEF"]


def _handoff(handoff_id: str, call_id: str) -> Handoff:
    return Handoff(id=handoff_id, call_id=call_id, queue="support", reason="caller_requested_human", summary="s",
                   caller="+15551230001", callee="+15559870002", last_utterance="a human please")


async def test_call_completed_abandons_the_callers_waiting_handoff(tmp_path: Path) -> None:
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    for handoff in (_handoff("hnd_gone", CALL_ID), _handoff("hnd_other", "CA_still_on"), _handoff("hnd_taken", CALL_ID)):
        await store.enqueue(handoff)
    await store.claim("hnd_taken", "ann")  # a person has this one already: not the webhook's to close
    async with agent_server(tmp_path, queue_store=store) as (_, http):
        ringing = _event("call.ringing", "evt_ring")
        assert (await post(http, ringing, sign(ringing, [NEW], int(time.time())))).status_code == 200
        still_waiting = [h.id for h in await store.waiting("support")]
        forged = _event(event_id="evt_forged")
        refused = await post(http, forged, sign(forged, ["rzp_whsec_attacker"], int(time.time())))
        after_forged = [h.id for h in await store.waiting("support")]
        body = _event(status="canceled")  # the caller hung up while waiting
        completed = await post(http, body, sign(body, [NEW], int(time.time())))
    assert still_waiting == after_forged == ["hnd_gone", "hnd_other"]  # only a signed call.completed counts
    assert _refused(refused) and completed.status_code == 200
    assert [h.id for h in await store.waiting("support")] == ["hnd_other"]  # the queue no longer lists the caller
    gone = await store.get("hnd_gone")
    assert (gone.status, gone.close_reason) == ("abandoned", "call_canceled") and gone.closed_at is not None
    assert (await store.get("hnd_taken")).status == "claimed"
    assert (await store.queues())["support"]["abandoned"] == 1
