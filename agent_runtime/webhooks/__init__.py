"""Webhooks: signed outbound delivery with a persistent outbox, and inbound verification.

Outbound events (envelope per protocols.md §7.4: `{"id","type","created","data"}`):

| type                 | emitted when                          | `data` fields |
|----------------------|---------------------------------------|---------------|
| `agent.call_started` | the media stream's `start` was accepted | `call_id`, `from`, `to`, `direction` |
| `agent.call_ended`   | the runtime's side of the call ended  | `call_id`, `reason`, `duration_s`, `ended_at` |
| `agent.handoff`      | a handoff to a human queue was stored | §7.4 fields + `handoff_id` |
| `agent.handoff_failed` | the carrier refused the transfer (its ack said `failed`) or never acknowledged it; the handoff is marked `failed` and no longer waits in the queue | `call_id`, `stream_id`, `handoff_id`, `target`, `error` (the carrier's error code, or `no_answer`) |
| `agent.recording_ready` | a call that asked for `record` was written to a stereo WAV | §7.4 `recording.ready` fields + `path` |

The lifecycle events use the `agent.` namespace (like `agent.handoff`) on purpose: Rozper
itself sends `call.answered` / `call.completed` about the same call, with carrier facts
(billing, busy/no-answer) the runtime does not know. A receiver subscribed to both can tell
them apart. `reason` is the runtime's end reason (`completed`, `transferred`,
`transport_lost`, …).

The handoff events are written to the queue store in the same commit as the handoff change and
relayed from there to the outbox with a fixed event id (handoff/announce.py), so a crash
between the two files neither loses nor duplicates them.

Modules: `events` (ids, envelope bytes), `backoff` (retry schedule), `outbox` (SQLite rows),
`delivery` (the HTTP worker), `inbound` (verify → de-duplicate → dispatch), `seen` (the
de-duplication store), `records` (what inbound events change on call records), `service`
(building and running these from a ServerConfig).
"""

from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.events import CALL_ENDED, CALL_STARTED, HANDOFF, HANDOFF_FAILED, encode_event, new_event_id

__all__ = ["Backoff", "CALL_ENDED", "CALL_STARTED", "HANDOFF", "HANDOFF_FAILED", "encode_event", "new_event_id"]
