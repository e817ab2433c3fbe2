"""The support-line example end to end: its demo flow places a call through the real server
and the carrier simulator, the agent hands it to the `support` queue, and the queue API shows
the waiting call with its summary; the outbox delivers the signed `agent.handoff`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.loading import load_agent

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.anyio


async def test_the_demo_hands_the_caller_to_the_support_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "support"))
    from run_demo import CALLER_SAYS, run_support_demo

    outcome = await run_support_demo(tmp_path, say=lambda _: None)

    [waiting] = outcome.waiting
    assert waiting["queue"] == "support" and waiting["status"] == "waiting" and waiting["position"] == 1
    assert waiting["caller"] == "+15551230001" and waiting["reason"] == "caller_requested_human"
    assert waiting["summary"].startswith("Caller asked for a person") and CALLER_SAYS in waiting["summary"]
    assert waiting["last_utterance"] == CALLER_SAYS and "transcript" not in waiting
    # The carrier was told in-stream, and nothing hung up the call.
    [transfer] = outcome.call.transfers
    assert transfer["target"] == {"type": "queue", "queue": "support"} and transfer["context"]["handoff_id"] == waiting["id"]
    assert outcome.call.hangups == [] and outcome.call.stop_reason == "transferred"
    assert outcome.record.end_reason == "transferred"
    assert outcome.record.transcript[-1] == ("assistant", load_agent(f"{ROOT}/examples/support/agent.py:build_agent").handoff_line)
    # The outbox delivered a signed agent.handoff to the demo's receiver (it keeps only verified events).
    [handoff_event] = [e for e in outcome.webhooks if e["type"] == "agent.handoff"]
    assert handoff_event["signature"].startswith("t=") and handoff_event["id"].startswith("evt_")
    assert handoff_event["data"]["handoff_id"] == waiting["id"] and handoff_event["data"]["summary"] == waiting["summary"]
    assert handoff_event["data"]["target"] == {"type": "queue", "queue": "support"}
    with sqlite3.connect(tmp_path / "queues.sqlite3") as db:  # durable in the SQLite store
        assert db.execute("SELECT id, queue, status FROM handoffs").fetchall() == [(waiting["id"], "support", "waiting")]


def test_the_order_tools_only_tell_a_caller_about_their_own_orders() -> None:
    agent = load_agent(f"{ROOT}/examples/support/agent.py:build_agent")
    tools = {t.name: t for t in agent.tools}
    mine, stranger = CallContext(call_id="c1", caller="+15551230001"), CallContext(call_id="c2", caller="+15550000000")
    assert tools["lookup_order"].fn("a 17", mine) == "order A-17: wireless headphones, delivered on Tuesday"
    assert tools["lookup_order"].fn("A-17", stranger).startswith("no order")
    assert tools["list_my_orders"].fn(mine).startswith("A-23: a phone case")
    assert agent.handoff_queues == ("support", "billing")
