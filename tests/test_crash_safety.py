"""Crash safety: a process killed (SIGKILL) in the middle of a handoff loses neither the handoff
nor its `agent.handoff` event, wherever the kill lands between the two files (queue store,
outbox); a restarted runtime on the same files delivers the event exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from agent_runtime.agent.definition import Agent
from agent_runtime.carrier.signatures import verify
from agent_runtime.config import ServerConfig
from agent_runtime.handoff.store import SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.runtime import Runtime
from agent_runtime.server.run import bind, running_server
from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.outbox import Outbox
from agent_runtime.webhooks.service import OUTBOX_FILE, build_outbox, delivering
from fakes.handoff_child import SIGNING_SECRET, WEBHOOK_SECRETS
from fakes.openai_server import FakeOpenAIServer, ToolCall, tool_call_reply
from fakes.webhook_receiver import WebhookReceiver

TESTS = Path(__file__).parent
SUMMARY = "Caller wants a refund for order A-17."


def _run_child(openai_server: FakeOpenAIServer, receiver: WebhookReceiver, data_dir: Path, kill_point: str) -> list[str]:
    """Runs the child until its SIGKILL; returns the words of its last line."""
    openai_server.push_transcription("I want to talk to a human about my refund.")
    args = '{"queue": "support", "reason": "caller_requested_human", "summary": "' + SUMMARY + '"}'
    openai_server.push_chat(tool_call_reply([ToolCall("call_h", "transfer_to_human", [args])]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run(
        [sys.executable, str(TESTS / "fakes" / "handoff_child.py"), str(data_dir), openai_server.base_url, receiver.url, kill_point],
        capture_output=True, text=True, timeout=120, env=env, cwd=TESTS.parent,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    return child.stdout.strip().splitlines()[-1].split()


async def _restart_and_deliver(data_dir: Path, receiver_url: str) -> None:
    """A new runtime process on the same files: the server (whose start-up relays unannounced
    handoff events) and the delivery worker, until nothing is pending."""
    sock = bind("127.0.0.1", 0)
    config = ServerConfig(host="127.0.0.1", port=sock.getsockname()[1], signing_secrets=(SIGNING_SECRET,),
                          data_dir=str(data_dir), webhook_urls=(receiver_url,), webhook_secrets=WEBHOOK_SECRETS)
    outbox = build_outbox(config)
    assert outbox is not None
    store = SqliteQueueStore(data_dir / "queues.sqlite3")
    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    runtime = Runtime(config, Agent.from_prompts(), providers, queue_store=store, emit=outbox.enqueue)
    async with delivering(outbox, WEBHOOK_SECRETS, backoff=Backoff(base_s=0.05), timeout_s=2.0, poll_interval_s=0.05):
        async with running_server(runtime, sock):
            with anyio.fail_after(30):
                while await store.unannounced() or any(r.status == "pending" for r in await outbox.rows()):
                    await anyio.sleep(0.05)


def _handoff_rows(outbox: Outbox) -> list:
    return [row for row in anyio.run(outbox.rows) if row.event_type == "agent.handoff"]


def _check_delivered_once(receiver: WebhookReceiver, outbox: Outbox, handoff_id: str, event_id: str) -> bytes:
    rows = anyio.run(outbox.rows)
    assert all(r.status == "delivered" for r in rows), rows
    assert [(r.event_id, r.status) for r in _handoff_rows(outbox)] == [(event_id, "delivered")]  # stored once
    [delivered] = [a for a in receiver.accepted if json.loads(a.body)["type"] == "agent.handoff"]
    assert delivered.headers["rozper-event-id"] == event_id
    envelope = json.loads(delivered.body)
    assert envelope["id"] == event_id and envelope["data"]["handoff_id"] == handoff_id
    assert envelope["data"]["target"] == {"type": "queue", "queue": "support"} and envelope["data"]["summary"] == SUMMARY
    for secret in WEBHOOK_SECRETS:
        verify(delivered.headers["rozper-signature"], delivered.body, [secret], time.time())
    types = {json.loads(a.body)["type"] for a in receiver.accepted}
    assert "agent.call_started" in types  # the lifecycle event the child emitted was durable too
    return delivered.body


def test_killed_after_the_outbox_commit_delivers_the_event_once_after_restart(openai_server, tmp_path: Path) -> None:  # noqa: ANN001
    with WebhookReceiver() as receiver:
        receiver.fail_all()  # nothing is delivered while the child lives: the rows must be pending
        accepted = _run_child(openai_server, receiver, tmp_path, "after_event")
        assert accepted[:2] == ["handoff", "accepted"], accepted
        handoff_id, event_id = accepted[2], accepted[3]

        # The handoff is in the queue, as the dead process left it.
        store = SqliteQueueStore(tmp_path / "queues.sqlite3")
        [handoff] = anyio.run(store.waiting, "support")
        assert handoff.id == handoff_id and handoff.summary == SUMMARY
        # Its event is pending in the outbox (the child never delivered it), the body intact; the
        # queue store still holds it too (the kill came before it was marked announced).
        outbox = Outbox(tmp_path / OUTBOX_FILE, [])
        [row] = anyio.run(outbox.rows, event_id)
        assert (row.status, row.url) == ("pending", receiver.url)
        body = anyio.run(outbox.body, event_id)
        assert json.loads(body)["type"] == "agent.handoff" and json.loads(body)["data"]["handoff_id"] == handoff_id
        assert [e.id for e in anyio.run(store.unannounced)] == [event_id]

        # A restarted runtime relays it again (same id: the outbox keeps one) and delivers it.
        receiver.accept_all()
        anyio.run(_restart_and_deliver, tmp_path, receiver.url)
        assert _check_delivered_once(receiver, outbox, handoff_id, event_id) == body  # same bytes
        assert anyio.run(store.unannounced) == []


def test_killed_between_the_queue_store_and_the_outbox_loses_no_event(openai_server, tmp_path: Path) -> None:  # noqa: ANN001
    with WebhookReceiver() as receiver:
        receiver.fail_all()
        stored = _run_child(openai_server, receiver, tmp_path, "before_event")
        assert stored[:2] == ["handoff", "stored"], stored
        handoff_id, event_id = stored[2], stored[3]

        # The handoff is waiting; its event never reached the outbox, but it is in the queue store.
        store = SqliteQueueStore(tmp_path / "queues.sqlite3")
        [handoff] = anyio.run(store.waiting, "support")
        assert handoff.id == handoff_id
        outbox = Outbox(tmp_path / OUTBOX_FILE, [])
        assert _handoff_rows(outbox) == []
        [pending] = anyio.run(store.unannounced)
        assert (pending.id, pending.type, pending.data["handoff_id"]) == (event_id, "agent.handoff", handoff_id)

        # The restarted runtime's start-up relays it to the outbox, and the worker delivers it.
        receiver.accept_all()
        anyio.run(_restart_and_deliver, tmp_path, receiver.url)
        _check_delivered_once(receiver, outbox, handoff_id, event_id)
        assert anyio.run(store.unannounced) == []


@pytest.mark.anyio
async def test_relaying_the_same_event_twice_stores_it_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / OUTBOX_FILE, ["http://127.0.0.1:9/hooks"])
    first = await outbox.enqueue("agent.handoff", {"handoff_id": "hnd_1"}, "evt_fixed")
    again = await outbox.enqueue("agent.handoff", {"handoff_id": "hnd_1"}, "evt_fixed")
    assert first == again == "evt_fixed" and len(await outbox.rows("evt_fixed")) == 1
