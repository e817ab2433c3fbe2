"""Event ids and the §7.4 envelope, serialised once so every retry sends the same bytes."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

CALL_STARTED = "agent.call_started"
CALL_ENDED = "agent.call_ended"
HANDOFF = "agent.handoff"
HANDOFF_FAILED = "agent.handoff_failed"  # the transfer was refused or unanswered: the handoff left the queue

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        out.append(_CROCKFORD[digit])
    return "".join(reversed(out))


def new_event_id(now: float | None = None) -> str:
    """`evt_` + a ULID: 48-bit milliseconds then 80 random bits, Crockford base32 (sorts by time)."""
    millis = int((time.time() if now is None else now) * 1000)
    return "evt_" + _base32(millis, 10) + _base32(secrets.randbits(80), 16)


def encode_event(event_id: str, event_type: str, created: int, data: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, no trailing newline: the exact bytes that are signed and sent."""
    envelope = {"id": event_id, "type": event_type, "created": int(created), "data": data}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
