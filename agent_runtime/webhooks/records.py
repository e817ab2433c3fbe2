"""What inbound Rozper events change in the runtime: the call's record (and a log line).

`call.*` events are appended to the record's `carrier_events`; `recording.ready` stores the
recording URL. Events for calls this process does not know (another process answered them,
or the record aged out) are logged and accepted: there is nothing to update here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_runtime.runtime import CallRecord, Runtime

log = logging.getLogger("agent_runtime.webhooks")


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
