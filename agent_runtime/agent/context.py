"""What the runtime knows about one call; prompts and tools may read it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the runtime knows about one call; prompts and tools may read it."""

    call_id: str
    caller: str = "unknown"
    callee: str = "unknown"
    direction: str = "inbound"
    custom_parameters: dict[str, str] = field(default_factory=dict)
