"""Handoff to a human queue (S15) through the real server and the carrier simulator, and the
queue API over real HTTP with bearer scopes and Idempotency-Key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agent_runtime.handoff.store import Handoff, HandoffEvent, SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from handoffkit import SUMMARY, script_handoff, support_agent
from callkit import SECRET, caller_audio, live_agent

pytestmark = pytest.mark.anyio
READER = "key_reader_0123456789"
WRITER = "key_writer_0123456789"
KEYS = ((READER, frozenset({"queues.read"})), (WRITER, frozenset({"queues.read", "queues.write", "transcripts.read"})))


@pytest.fixture
def providers(openai_client) -> Providers:  # noqa: ANN001
    return Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())


async def test_s15_transfer_by_stream_message_then_stop_transferred(openai_server, providers, tmp_path) -> None:  # noqa: ANN001
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    stored_at: list[float] = []
    enqueue = store.enqueue

    async def timed_enqueue(handoff: Handoff, announce: HandoffEvent | None = None) -> Handoff:
        result = await enqueue(handoff, announce)
        stored_at.append(time.monotonic())
        return result

    store.enqueue = timed_enqueue  # type: ignore[method-assign]
    script_handoff(openai_server)
    script = CallScript(utterances=[Utterance(caller_audio())], extensions=("stop_reason", "transfer", "hangup"))
    async with live_agent(providers, support_agent(), queue_store=store, api_keys=KEYS) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
        async with httpx.AsyncClient(base_url=agent.config.base_url) as api:
            waiting = (await api.get("/v1/queues/support/calls", headers={"Authorization": f"Bearer {READER}"})).json()

    assert len(result.transfers) == 1 and result.hangups == []  # nothing hung up the call
    transfer = result.transfers[0]
    assert transfer["target"] == {"type": "queue", "queue": "support"} and transfer["summary"] == SUMMARY
    assert stored_at[0] < result.transfer_times[0]  # stored before the carrier was told
    assert record.end_reason == "transferred" and result.stop_reason == "transferred"
    [handoff] = await store.waiting("support")
    assert handoff.id == transfer["context"]["handoff_id"]
    assert (handoff.caller, handoff.summary, handoff.last_utterance) == ("+15551230001", SUMMARY, "I want to talk to a human about my refund.")
    assert waiting["data"][0]["id"] == handoff.id and waiting["data"][0]["position"] == 1
    assert "transcript" not in waiting["data"][0]
    # The bridging line was spoken before the transfer.
    assert record.transcript[-1] == ("assistant", support_agent().handoff_line)


async def test_s15_transfer_by_closing_the_stream_and_the_action_url(openai_server, providers, tmp_path) -> None:  # noqa: ANN001
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    script_handoff(openai_server)
    script = CallScript(utterances=[Utterance(caller_audio())])  # a plain Twilio-like peer: no extensions
    async with live_agent(providers, support_agent(), queue_store=store) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
    assert record.end_reason == "transferred" and result.transfers == []
    assert result.after_stream == {"version": "1", "instructions": [{
        "verb": "transfer", "target": {"type": "queue", "queue": "support"}, "whisper": SUMMARY,
        "context": {"handoff_id": (await store.waiting("support"))[0].id}}]}


async def test_queue_api_scopes_idempotency_and_claims(providers, tmp_path) -> None:  # noqa: ANN001
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    await store.enqueue(Handoff(id="hnd_1", call_id="CA1", queue="support", reason="r", summary="s", caller="+1555",
                                callee="+1666", last_utterance="help", transcript=[{"role": "user", "text": "help"}]))
    async with live_agent(providers, queue_store=store, api_keys=KEYS) as agent:
        async with httpx.AsyncClient(base_url=agent.config.base_url) as api:
            def auth(key: str, idem: str | None = None) -> dict[str, str]:
                return {"Authorization": f"Bearer {key}", **({"Idempotency-Key": idem} if idem else {})}

            anonymous = await api.get("/v1/queues")
            forbidden = await api.get("/v1/handoffs/hnd_1", headers=auth(READER))
            full = await api.get("/v1/handoffs/hnd_1", headers=auth(WRITER))
            reader_claim = await api.post("/v1/handoffs/hnd_1/claim", json={"agent": "ann"}, headers=auth(READER))
            first = await api.post("/v1/handoffs/hnd_1/claim", json={"agent": "ann"}, headers=auth(WRITER, "k1"))
            replay = await api.post("/v1/handoffs/hnd_1/claim", json={"agent": "ann"}, headers=auth(WRITER, "k1"))
            changed = await api.post("/v1/handoffs/hnd_1/claim", json={"agent": "bob"}, headers=auth(WRITER, "k1"))
            twice = await api.post("/v1/handoffs/hnd_1/claim", json={"agent": "bob"}, headers=auth(WRITER, "k2"))
            invalid = await api.post("/v1/handoffs/hnd_1/claim", json={}, headers=auth(WRITER))
            done = await api.post("/v1/handoffs/hnd_1/complete", headers=auth(WRITER))
            queues = await api.get("/v1/queues", headers=auth(READER))
            missing = await api.get("/v1/handoffs/hnd_nope", headers=auth(WRITER))

    assert anonymous.status_code == 401 and anonymous.json()["error"]["request_id"].startswith("req_")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert full.json()["transcript"] == [{"role": "user", "text": "help"}]
    assert reader_claim.status_code == 403
    assert first.status_code == 200 and first.json()["claimed_by"] == "ann"
    assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "conflict"
    assert twice.status_code == 409  # already claimed by ann
    assert invalid.status_code == 422 and invalid.json()["error"]["param_errors"] == [{"param": "agent", "reason": "required"}]
    assert done.json()["status"] == "completed"
    assert queues.json()["data"] == [{"queue": "support", "waiting": 0, "claimed": 0, "completed": 1, "failed": 0, "abandoned": 0}]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_killed_process_loses_no_accepted_handoff(tmp_path: Path) -> None:
    db = tmp_path / "queues.sqlite3"
    code = (
        "import anyio, os, sys\n"
        "from pathlib import Path\n"
        "from agent_runtime.handoff.store import Handoff, SqliteQueueStore\n"
        "store = SqliteQueueStore(Path(sys.argv[1]))\n"
        "anyio.run(store.enqueue, Handoff(id='hnd_k', call_id='CA_k', queue='support', reason='r', summary='s',"
        " caller='+1', callee='+2', last_utterance='x'))\n"
        "print('accepted', flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.strip() == "accepted"
    import anyio

    [handoff] = anyio.run(SqliteQueueStore(db).waiting, "support")
    assert handoff.id == "hnd_k"
    assert os.path.getsize(db) > 0
