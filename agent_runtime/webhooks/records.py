"""What inbound Rozper events change in the runtime: the call's record (and a log line).

`call.*` events are appended to the record's `carrier_events`; `recording.ready` stores the
recording URL. Events for calls this process does not know (another process answered them,
or the record aged out) are logged and accepted: there is nothing to update here.

`call.completed` (the call is over, whatever its status) also takes the call's handoffs that
still wait in a human queue out of it, as `abandoned`: the queue must not offer a person a
caller who hung up. The queue store is shared, so this works whichever process stored them.
A store failure raises, so the sender's retry handles the event again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agent_runtime.handoff.store import HandoffConflict

if TYPE_CHECKING:
    from agent_runtime.runtime import CallRecord, Runtime

log = logging.getLogger("agent_runtime.webhooks")

CALL_OVER = frozenset({"call.completed"})  # Rozper's one "the call ended" event (any final status)


class CallRecordUpdates:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _find(self, call_id: object) -> CallRecord | None:
        if not isinstance(call_id, str):
            return None
        record = self._runtime.active_calls.get(call_id)
        if record is not None:
            return record
        return next((r for r in reversed(self._runtime.finished_calls) if r.call_id == call_id), None)

    async def __call__(self, event_type: str, event: dict[str, Any]) -> None:
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        record = self._find(data.get("call_id"))
        known = record is not None
        if event_type.startswith("call."):
            if event_type in CALL_OVER:
                await self._abandon_waiting(data.get("call_id"), str(data.get("status") or "completed"))
            if record is not None:
                record.carrier_events.append((event_type, data))
        elif event_type == "recording.ready":
            url = data.get("url")
            if record is not None and isinstance(url, str):
                record.recording_url = url  # a signed URL: stored, never logged
        else:
            log.debug("inbound webhook %s ignored", event_type)
            return
        log.info("inbound webhook %s (call %s)", event_type, "known" if known else "unknown",
                 extra={"event_id": event.get("id"), "call_id": data.get("call_id")})

    async def _abandon_waiting(self, call_id: object, status: str) -> None:
        store = self._runtime.queue_store
        if store is None or not isinstance(call_id, str):
            return
        for handoff in await store.waiting_for_call(call_id):
            try:
                await store.close(handoff.id, "abandoned", f"call_{status}")
            except HandoffConflict:
                continue  # a person claimed it in the meantime: the call is theirs to close
            log.info("handoff abandoned: the caller's call ended while waiting",
                     extra={"call_id": call_id, "handoff_id": handoff.id, "queue": handoff.queue})
