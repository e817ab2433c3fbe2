"""Webhooks: signed outbound delivery with a persistent outbox, and inbound verification.

Outbound events (envelope per protocols.md §7.4: `{"id","type","created","data"}`):

| type                 | emitted when                          | `data` fields |
|----------------------|---------------------------------------|---------------|
| `agent.call_started` | the media stream's `start` was accepted | `call_id`, `from`, `to`, `direction` |
| `agent.call_ended`   | the runtime's side of the call ended  | `call_id`, `reason`, `duration_s`, `ended_at` |
| `agent.handoff`      | a handoff to a human queue was stored | §7.4 fields + `handoff_id` |
| `agent.recording_ready` | a call that asked for `record` was written to a stereo WAV | §7.4 `recording.ready` fields + `path` |

The lifecycle events use the `agent.` namespace (like `agent.handoff`) on purpose: Rozper
itself sends `call.answered` / `call.completed` about the same call, with carrier facts
(billing, busy/no-answer) the runtime does not know. A receiver subscribed to both can tell
them apart. `reason` is the runtime's end reason (`completed`, `transferred`,
`transport_lost`, …).

Modules: `events` (ids, envelope bytes), `backoff` (retry schedule), `outbox` (SQLite rows),
`delivery` (the HTTP worker), `inbound` (verify → de-duplicate → dispatch), `seen` (the
de-duplication store), `records` (what inbound events change on call records), `service`
(building and running these from a ServerConfig).
"""

from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.events import CALL_ENDED, CALL_STARTED, HANDOFF, encode_event, new_event_id

__all__ = ["Backoff", "CALL_ENDED", "CALL_STARTED", "HANDOFF", "encode_event", "new_event_id"]
