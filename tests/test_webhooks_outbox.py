"""Outbound webhooks: the SQLite outbox and the delivery worker against a real local receiver.

Real parts only: a uvicorn receiver on 127.0.0.1, SQLite files in tmp dirs, httpx. The backoff
is injected in tenths of a second; timing asserts are lower bounds (spacing), never speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from agent_runtime.carrier.signatures import SignatureError, verify
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.delivery import DeliveryWorker
from agent_runtime.webhooks.events import new_event_id
from agent_runtime.webhooks.outbox import DeliveryRow, Outbox
from callkit import SECRET, caller_audio, live_agent
from fakes.webhook_receiver import HANG, WebhookReceiver

pytestmark = pytest.mark.anyio
NEW_SECRET = "rzp_whsec_new_9f8c1d2e3a4b5c6d7e8f"
OLD_SECRET = "rzp_whsec_old_0011223344556677889a"
SECRETS = (NEW_SECRET, OLD_SECRET)
DATA = {"call_id": "CA_01", "stream_id": "MZ_01", "target": {"type": "queue", "queue": "support"},
        "reason": "caller_requested_human", "summary": "Refund for order A-17 — €20", "context": {}}


@asynccontextmanager
async def worker_running(outbox: Outbox, backoff: Backoff, timeout_s: float = 1.0, **options: object) -> AsyncIterator[DeliveryWorker]:
    worker = DeliveryWorker(outbox, SECRETS, backoff=backoff, timeout_s=timeout_s, poll_interval_s=0.1, **options)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        try:
            yield worker
        finally:
            tg.cancel_scope.cancel()


async def until(predicate, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    """Generous: only catches hangs."""
    with anyio.fail_after(timeout_s):
        while not await predicate():
            await anyio.sleep(0.02)


async def row_status(outbox: Outbox, event_id: str) -> DeliveryRow:
    [row] = await outbox.rows(event_id)
    return row


def test_event_ids_are_prefixed_ulids_sorted_by_time() -> None:
    ids = [new_event_id(1767225600.000 + i / 1000) for i in range(50)]
    assert all(i.startswith("evt_") and len(i) == 30 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 50


async def test_enqueue_commits_the_envelope_once_per_endpoint(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    before = int(time.time())
    event_id = await outbox.enqueue("agent.handoff", DATA)
    # A second Outbox on the file (another process, or after a restart) sees the committed rows.
    rows = await Outbox(tmp_path / "outbox.sqlite3", []).rows()
    assert [(r.event_id, r.url, r.status, r.attempts) for r in rows] == [
        (event_id, "http://127.0.0.1:9/a", "pending", 0), (event_id, "http://127.0.0.1:9/b", "pending", 0)]
    envelope = json.loads(await outbox.body(event_id))
    assert envelope["id"] == event_id and envelope["type"] == "agent.handoff" and envelope["data"] == DATA
    assert before <= envelope["created"] <= int(time.time())


async def test_delivered_once_accepted_with_same_bytes_and_both_rotating_signatures(tmp_path: Path) -> None:
    backoff = Backoff(base_s=0.2, factor=2.0, jitter=0.5)
    with WebhookReceiver(script=[500, 503, HANG, 429], hang_s=10.0) as receiver:
        outbox = Outbox(tmp_path / "outbox.sqlite3", [receiver.url])
        async with worker_running(outbox, backoff, timeout_s=1.0):
            event_id = await outbox.enqueue("agent.handoff", DATA)
            await until(lambda: _status_is(outbox, event_id, "delivered"))
            await anyio.sleep(0.5)  # nothing more arrives once delivered
        attempts = list(receiver.attempts)
    body = await outbox.body(event_id)
    row = await row_status(outbox, event_id)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 5, 200)
    assert [a.answer for a in attempts] == [500, 503, HANG, 429, 200] and len(receiver.accepted) == 1
    for attempt in attempts:
        assert attempt.body == body  # serialised once: the same bytes every time
        assert attempt.headers["rozper-event-id"] == event_id == json.loads(attempt.body)["id"]
        assert attempt.headers["content-type"] == "application/json"
        header = attempt.headers["rozper-signature"]
        assert header.count("v1=") == 2
        for secret in SECRETS:  # a receiver that knows only one of the rotating secrets accepts it
            verify(header, attempt.body, [secret], time.time())
        with pytest.raises(SignatureError):
            verify(header, attempt.body, ["rzp_whsec_someone_else"], time.time())
    # Spaced by the backoff: each retry waits at least its jittered minimum after the failure.
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:])]
    for retry, gap in enumerate(gaps, 1):
        floor = backoff.min_delay(retry) + (1.0 if attempts[retry - 1].answer == HANG else 0.0)
        assert gap >= floor - 0.02, (retry, gap, floor)
    print(f"\nattempt gaps (s): {[round(g, 3) for g in gaps]}")


async def _status_is(outbox: Outbox, event_id: str, status: str) -> bool:
    return all(r.status == status for r in await outbox.rows(event_id))


async def test_one_event_two_endpoints_are_delivered_independently(tmp_path: Path) -> None:
    with WebhookReceiver() as good, WebhookReceiver(script=[500, 500]) as flaky:
        outbox = Outbox(tmp_path / "outbox.sqlite3", [good.url, flaky.url])
        async with worker_running(outbox, Backoff(base_s=0.05)):
            event_id = await outbox.enqueue("agent.call_ended", {"call_id": "CA_2", "reason": "completed"})
            await until(lambda: _status_is(outbox, event_id, "delivered"))
    assert len(good.attempts) == 1 and len(flaky.attempts) == 3
    assert good.attempts[0].body == flaky.attempts[-1].body


async def test_gives_up_after_8_retries_and_keeps_the_event(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with WebhookReceiver() as receiver:
        receiver.fail_all()
        outbox = Outbox(tmp_path / "outbox.sqlite3", [receiver.url])
        async with worker_running(outbox, Backoff(base_s=0.01, factor=1.5, max_retries=8)):
            event_id = await outbox.enqueue("agent.handoff", DATA)
            await until(lambda: _status_is(outbox, event_id, "dead"))
            await anyio.sleep(0.3)
        attempts = len(receiver.attempts)
    row = await row_status(outbox, event_id)
    assert attempts == 9 and (row.status, row.attempts, row.last_status, row.last_error) == ("dead", 9, 500, "HTTP 500")
    assert json.loads(await Outbox(tmp_path / "outbox.sqlite3", []).body(event_id))["data"] == DATA  # nothing lost
    assert any("dead after 9 attempts" in r.getMessage() for r in caplog.records)
    assert not any(s in r.getMessage() for r in caplog.records for s in (*SECRETS, "v1="))  # never logged


async def test_gives_up_when_the_window_is_over(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        receiver.fail_all()
        outbox = Outbox(tmp_path / "outbox.sqlite3", [receiver.url])
        async with worker_running(outbox, Backoff(base_s=0.1, factor=2.0, jitter=0.0, window_s=0.5)):
            event_id = await outbox.enqueue("agent.handoff", DATA)
            await until(lambda: _status_is(outbox, event_id, "dead"))
    # Retries at +0.1, +0.3; the next (+0.7) would fall outside the 0.5 s window.
    assert (await row_status(outbox, event_id)).attempts == len(receiver.attempts) == 3


async def test_restart_while_the_receiver_fails_resumes_with_the_same_event(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with WebhookReceiver() as receiver:
        receiver.fail_all()
        outbox = Outbox(path, [receiver.url])
        async with worker_running(outbox, Backoff(base_s=0.05)):
            event_id = await outbox.enqueue("agent.handoff", DATA)
            await until(lambda: _attempts_at_least(receiver, 2))
        before = len(receiver.attempts)  # the worker stopped; the row stays pending
        assert (await row_status(outbox, event_id)).status == "pending"
        receiver.accept_all()
        restarted = Outbox(path, [])  # URLs live in the rows, not in the new process's config
        async with worker_running(restarted, Backoff(base_s=0.05)):
            await until(lambda: _status_is(restarted, event_id, "delivered"))
    bodies = {a.body for a in receiver.attempts}
    assert len(bodies) == 1 and json.loads(bodies.pop())["id"] == event_id
    assert len(receiver.accepted) == 1 and len(receiver.attempts) > before
    assert (await row_status(restarted, event_id)).attempts == len(receiver.attempts)


async def test_attempt_in_flight_when_stopped_is_retried_after_its_lease(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with WebhookReceiver(script=[HANG], hang_s=10.0) as receiver:
        outbox = Outbox(path, [receiver.url])
        async with worker_running(outbox, Backoff(base_s=0.05), timeout_s=5.0, lease_s=1.0):
            event_id = await outbox.enqueue("agent.handoff", DATA)
            await until(lambda: _attempts_at_least(receiver, 1))
        # Stopped mid-request (as a crash would): the attempt counted, the row is still pending.
        row = await row_status(outbox, event_id)
        assert (row.status, row.attempts) == ("pending", 1)
        async with worker_running(Outbox(path, []), Backoff(base_s=0.05), timeout_s=5.0, lease_s=1.0):
            await until(lambda: _status_is(outbox, event_id, "delivered"))
    assert [a.answer for a in receiver.attempts] == [HANG, 200]
    # Not before the lease ran out. The lease starts at the claim, a little before the first request
    # reaches the receiver (tens of ms on a loaded machine); an early retry would come ~0.05 s later.
    assert receiver.attempts[1].at - receiver.attempts[0].at >= 1.0 - 0.15


async def _attempts_at_least(receiver: WebhookReceiver, n: int) -> bool:
    return len(receiver.attempts) >= n


def test_default_schedule_fits_8_retries_in_24_hours() -> None:
    backoff = Backoff()
    assert backoff.max_retries == 8
    assert sum(backoff.max_delay(r) for r in range(1, 9)) < backoff.window_s == 24 * 3600
    assert backoff.min_delay(1) == 150.0 and backoff.max_delay(8) == 300.0 * 128


async def test_a_call_emits_its_lifecycle_events_through_the_outbox(tmp_path: Path) -> None:
    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    with WebhookReceiver() as receiver:
        outbox = Outbox(tmp_path / "outbox.sqlite3", [receiver.url])
        async with worker_running(outbox, Backoff(base_s=0.05)):
            async with live_agent(providers, emit=outbox.enqueue, data_dir=str(tmp_path)) as agent:
                script = CallScript(utterances=[Utterance(caller_audio())], hangup_after_s=0.5)
                await place_call(agent.connect_url, script, SECRET)
                record = await agent.ended_call(timeout_s=10)
            # Leaving live_agent drained the runtime's event pump into the outbox.
            await until(lambda: _all_delivered(outbox, 2))
    events = [json.loads(a.body) for a in receiver.accepted]
    assert [e["type"] for e in events] == ["agent.call_started", "agent.call_ended"]
    started, ended = (e["data"] for e in events)
    assert started == {"call_id": record.call_id, "from": "+15551230001", "to": "+15559870002", "direction": "inbound"}
    assert ended["call_id"] == record.call_id and ended["reason"] == record.end_reason == "completed"
    assert ended["duration_s"] > 0 and ended["ended_at"] == int(record.ended_at or 0)


async def _all_delivered(outbox: Outbox, n: int) -> bool:
    rows = await outbox.rows()
    return len(rows) == n and all(r.status == "delivered" for r in rows)
