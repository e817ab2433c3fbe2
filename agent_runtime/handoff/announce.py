"""The events a handoff emits, and their relay from the queue store to the webhook outbox.

The queue store writes each event in the same commit as the change it announces (store.py);
`relay` then hands it to the outbox and only afterwards deletes it from the store. A crash
anywhere in between leaves the event in the store, and the next relay (at start-up, or with the
next handoff) sends it again under the same id, which the outbox stores once.

| type                   | when                                             | `data` |
|------------------------|--------------------------------------------------|--------|
| `agent.handoff`        | a handoff was accepted and stored                | `call_id`, `stream_id`, `handoff_id`, `target`, `reason`, `summary`, `context` |
| `agent.handoff_failed` | the carrier refused the transfer or never answered it; the handoff left the queue | `call_id`, `stream_id`, `handoff_id`, `target`, `error` |
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent_runtime.handoff.store import Handoff, HandoffEvent, QueueStore
from agent_runtime.webhooks.events import HANDOFF, HANDOFF_FAILED, new_event_id

log = logging.getLogger("agent_runtime.handoff")

# (event_type, data, event_id) → the outbox has stored it (returns the event id, or None).
Relay = Callable[[str, dict[str, Any], str], Awaitable[Any]]


def handoff_event(record: Handoff, stream_id: str | None) -> HandoffEvent:
    return HandoffEvent(new_event_id(), HANDOFF, {
        "call_id": record.call_id, "stream_id": stream_id, "handoff_id": record.id,
        "target": {"type": "queue", "queue": record.queue}, "reason": record.reason, "summary": record.summary,
        "context": {"caller": record.caller, "last_utterance": record.last_utterance},
    })


def handoff_failed_event(record: Handoff, stream_id: str | None, error: str) -> HandoffEvent:
    return HandoffEvent(new_event_id(), HANDOFF_FAILED, {
        "call_id": record.call_id, "stream_id": stream_id, "handoff_id": record.id,
        "target": {"type": "queue", "queue": record.queue}, "error": error,
    })


async def relay(store: QueueStore, emit: Relay) -> int:
    """Hands every unannounced event to `emit`, oldest first; returns how many. Stops at the
    first failure (the rest stay for the next relay, in order)."""
    count = 0
    while True:
        batch = await store.unannounced()
        if not batch:
            return count
        for event in batch:
            await emit(event.type, event.data, event.id)
            await store.announced(event.id)
            count += 1
