"""What the runtime knows about one call; prompts and tools may read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class CallControls(Protocol):
    """What a tool may do to the live call (given by the session)."""

    async def hand_off(self, queue: str, reason: str, summary: str) -> str: ...

    async def hang_up_after_speech(self, reason: str) -> str: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the runtime knows about one call; prompts and tools may read it."""

    call_id: str
    caller: str = "unknown"
    callee: str = "unknown"
    direction: str = "inbound"
    custom_parameters: dict[str, str] = field(default_factory=dict)
    controls: CallControls | None = field(default=None, compare=False, repr=False)
