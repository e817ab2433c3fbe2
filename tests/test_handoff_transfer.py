"""What happens to a handoff after it is stored: a transfer the carrier refuses or never answers
takes it out of the queue and emits `agent.handoff_failed`; a transfer by the `action` URL
survives a restart of the runtime between the stream closing and the carrier's request."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agent_runtime.call import transfer as transfer_module
from agent_runtime.carrier.signatures import sign, verify
from agent_runtime.handoff.store import SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.outbox import Outbox
from agent_runtime.webhooks.service import OUTBOX_FILE, delivering
from handoffkit import SUMMARY, script_handoff, support_agent
from callkit import SECRET, LiveAgent, caller_audio, live_agent
from fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.anyio
READER = "key_reader_0123456789"
HOOK_SECRETS = ("whsec_handoff_test_new_0123456789", "whsec_handoff_test_old_0123456789")


@pytest.fixture
def providers(openai_client) -> Providers:  # noqa: ANN001
    return Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())


@asynccontextmanager
async def agent_with_webhooks(
    providers: Providers, store: SqliteQueueStore, receiver: WebhookReceiver, data_dir: Path,
) -> AsyncIterator[LiveAgent]:
    """The real server with the outbox and its delivery worker, sending to `receiver`."""
    outbox = Outbox(data_dir / OUTBOX_FILE, [receiver.url])
    async with delivering(outbox, HOOK_SECRETS, backoff=Backoff(base_s=0.05), timeout_s=2.0, poll_interval_s=0.05):
        async with live_agent(providers, support_agent(), queue_store=store, emit=outbox.enqueue, data_dir=str(data_dir),
                              webhook_urls=(receiver.url,), webhook_secrets=HOOK_SECRETS,
                              api_keys=((READER, frozenset({"queues.read"})),)) as agent:
            yield agent


async def _events(receiver: WebhookReceiver, wanted: set[str], timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The verified events the receiver accepted, once every `wanted` type has arrived."""
    with anyio.fail_after(timeout_s):
        while True:
            events = []
            for attempt in receiver.accepted:
                verify(attempt.headers["rozper-signature"], attempt.body, HOOK_SECRETS[:1], time.time())
                events.append(json.loads(attempt.body))
            if wanted <= {e["type"] for e in events}:
                return events
            await anyio.sleep(0.05)


async def _signed_post(url: str) -> httpx.Response:
    body = json.dumps({"id": "evt_after", "type": "stream.ended", "created": int(time.time()), "data": {}}).encode()
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers={"Rozper-Signature": sign(body, [SECRET], int(time.time()))})


@pytest.mark.parametrize("answer", ["failed", None], ids=["refused", "unanswered"])
async def test_a_failed_transfer_leaves_the_queue_and_emits_handoff_failed(
    openai_server, providers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str | None,  # noqa: ANN001
) -> None:
    # `None`: the carrier's ack is unusable (status null), so the runtime never gets an answer; the
    # caller stays on the line past the (shortened) ack timeout, to hear what happens next.
    monkeypatch.setattr(transfer_module, "ACK_TIMEOUT_S", 1.0)
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    script_handoff(openai_server)
    script = CallScript(utterances=[Utterance(caller_audio())], extensions=("stop_reason", "transfer", "hangup"),
                        transfer_answer=answer, hangup_after_s=4.0)  # type: ignore[arg-type]
    with WebhookReceiver() as receiver:
        async with agent_with_webhooks(providers, store, receiver, tmp_path) as agent:
            result = await place_call(agent.connect_url, script, SECRET)
            record = await agent.ended_call()
            async with httpx.AsyncClient(base_url=agent.config.base_url) as api:
                listed = (await api.get("/v1/queues/support/calls", headers={"Authorization": f"Bearer {READER}"})).json()
            after_stream = await _signed_post(f"{agent.config.base_url}/rozper/after-stream/{result.call_id}")
            events = await _events(receiver, {"agent.handoff", "agent.handoff_failed"})

    # The call went on: the caller heard the transfer-failed line.
    assert len(result.transfers) == 1 and record.end_reason == "completed"
    assert record.transcript[-1] == ("assistant", support_agent().transfer_failed_line)
    # The queue no longer lists the caller; the record says why.
    handoff_id = result.transfers[0]["context"]["handoff_id"]
    assert await store.waiting("support") == [] and listed["data"] == []
    handoff = await store.get(handoff_id)
    error = "queue_not_found" if answer == "failed" else "no_answer"
    assert (handoff.status, handoff.close_reason) == ("failed", error)
    assert after_stream.json()["instructions"] == [{"verb": "hangup"}]  # a failed handoff is never transferred later
    # The receiver got the handoff, then its follow-up, both about this handoff.
    kinds = [e["type"] for e in events if e["type"].startswith("agent.handoff")]
    assert kinds == ["agent.handoff", "agent.handoff_failed"]
    [failed] = [e for e in events if e["type"] == "agent.handoff_failed"]
    assert failed["data"] == {"call_id": result.call_id, "stream_id": failed["data"]["stream_id"], "handoff_id": handoff_id,
                              "target": {"type": "queue", "queue": "support"}, "error": error}
    assert failed["data"]["stream_id"].startswith("MZ")
    assert await store.unannounced() == []


async def test_action_transfer_survives_a_restart_before_the_after_stream_request(openai_server, providers, tmp_path: Path) -> None:  # noqa: ANN001
    db = tmp_path / "queues.sqlite3"
    script_handoff(openai_server)
    script = CallScript(utterances=[Utterance(caller_audio())])  # a plain peer: no transfer extension → `action`
    async with live_agent(providers, support_agent(), queue_store=SqliteQueueStore(db), data_dir=str(tmp_path)) as first:
        result = await place_call(first.connect_url, script, SECRET)
        record = await first.ended_call()
    assert record.end_reason == "transferred"
    [handoff] = await SqliteQueueStore(db).waiting("support")
    expected = {"version": "1", "instructions": [{
        "verb": "transfer", "target": {"type": "queue", "queue": "support"}, "whisper": SUMMARY,
        "context": {"handoff_id": handoff.id}}]}
    assert result.after_stream == expected

    # That process is gone. The carrier's after-stream request (a retry, or the first one if the
    # process died right after closing the stream) reaches a new process on the same store.
    async with live_agent(providers, support_agent(), queue_store=SqliteQueueStore(db), data_dir=str(tmp_path)) as second:
        again = await _signed_post(f"{second.config.base_url}/rozper/after-stream/{result.call_id}")
        other = await _signed_post(f"{second.config.base_url}/rozper/after-stream/CA_no_handoff")
        unsigned = await httpx.AsyncClient().post(f"{second.config.base_url}/rozper/after-stream/{result.call_id}", content=b"{}")
    assert again.status_code == 200 and again.json() == expected  # the caller still reaches the queue
    assert other.json() == {"version": "1", "instructions": [{"verb": "hangup"}]}
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "unauthorized"
