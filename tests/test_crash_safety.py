"""Crash safety: a process killed (SIGKILL) right after a handoff was accepted loses neither the
handoff nor its `agent.handoff` event; a new process delivers the event from the same files."""

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

from agent_runtime.carrier.signatures import verify
from agent_runtime.handoff.store import SqliteQueueStore
from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.delivery import DeliveryWorker
from agent_runtime.webhooks.outbox import Outbox
from agent_runtime.webhooks.service import OUTBOX_FILE
from fakes.handoff_child import WEBHOOK_SECRETS
from fakes.openai_server import ToolCall, tool_call_reply
from fakes.webhook_receiver import WebhookReceiver

TESTS = Path(__file__).parent
SUMMARY = "Caller wants a refund for order A-17."


def test_killed_mid_handoff_keeps_the_handoff_and_delivers_its_event_after_restart(openai_server, tmp_path: Path) -> None:  # noqa: ANN001
    openai_server.push_transcription("I want to talk to a human about my refund.")
    args = '{"queue": "support", "reason": "caller_requested_human", "summary": "' + SUMMARY + '"}'
    openai_server.push_chat(tool_call_reply([ToolCall("call_h", "transfer_to_human", [args])]))
    with WebhookReceiver() as receiver:
        receiver.fail_all()  # nothing is delivered while the child lives: the rows must be pending
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        child = subprocess.run(
            [sys.executable, str(TESTS / "fakes" / "handoff_child.py"), str(tmp_path), openai_server.base_url, receiver.url],
            capture_output=True, text=True, timeout=120, env=env, cwd=TESTS.parent,
        )
        assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
        accepted = child.stdout.strip().splitlines()[-1].split()
        assert accepted[:2] == ["handoff", "accepted"], child.stdout
        handoff_id, event_id = accepted[2], accepted[3]
        attempts_before = len(receiver.attempts)

        # The handoff is in the queue, as the dead process left it.
        [handoff] = anyio.run(SqliteQueueStore(tmp_path / "queues.sqlite3").waiting, "support")
        assert handoff.id == handoff_id and handoff.summary == SUMMARY

        # Its event is pending in the outbox (the child never delivered it), the body intact.
        outbox = Outbox(tmp_path / OUTBOX_FILE, [])
        [row] = anyio.run(outbox.rows, event_id)
        assert (row.status, row.url) == ("pending", receiver.url)
        body = anyio.run(outbox.body, event_id)
        envelope = json.loads(body)
        assert envelope["type"] == "agent.handoff" and envelope["data"]["handoff_id"] == handoff_id
        assert envelope["data"]["target"] == {"type": "queue", "queue": "support"}

        # A new worker (a restarted process) delivers it: same id, same bytes, signed.
        receiver.accept_all()
        anyio.run(_deliver_all, outbox)
        rows = anyio.run(outbox.rows)
    assert all(r.status == "delivered" for r in rows), rows
    [delivered] = [a for a in receiver.accepted if a.headers["rozper-event-id"] == event_id]
    assert delivered.body == body
    for secret in WEBHOOK_SECRETS:
        verify(delivered.headers["rozper-signature"], delivered.body, [secret], time.time())
    types = {json.loads(a.body)["type"] for a in receiver.accepted}
    assert "agent.call_started" in types  # the lifecycle event the child emitted was durable too
    print(f"\nchild attempts before the kill: {attempts_before}; after restart: "
          f"{len(receiver.attempts) - attempts_before}; event types: {sorted(types)}")


async def _deliver_all(outbox: Outbox) -> None:
    worker = DeliveryWorker(outbox, WEBHOOK_SECRETS, backoff=Backoff(base_s=0.05), timeout_s=2.0, poll_interval_s=0.1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(30):
            while any(r.status == "pending" for r in await outbox.rows()):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
