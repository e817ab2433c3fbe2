"""The Runtime owns what every call shares: configuration, the agent, providers, call records.

No global state: the server, the CLI and tests each build their own Runtime.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from collections.abc import Awaitable, Callable
from typing import Any

from agent_runtime.agent.definition import Agent, CallContext
from agent_runtime.agent.tools import ToolRegistry
from agent_runtime.config import ServerConfig
from agent_runtime.handoff.store import Handoff, QueueStore
from agent_runtime.handoff.tool import handoff_tool
from agent_runtime.providers.base import Providers

EmitEvent = Callable[[str, dict[str, Any]], Awaitable[str]]

log = logging.getLogger("agent_runtime")


@dataclass(slots=True)
class TurnTrace:
    """Stage times of one agent response, in seconds since the caller's end of speech (or start)."""

    generation: int
    user_text: str = ""
    reply_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
    stages: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class CallRecord:
    call_id: str
    context: CallContext
    started_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    turns: list[TurnTrace] = field(default_factory=list)
    malformed_frames: int = 0
    barge_ins: int = 0


class SessionTokens:
    """Single-use, short-lived tokens handed out in voice instructions and required on `start`."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._issued: dict[str, tuple[float, CallContext]] = {}

    def issue(self, context: CallContext) -> str:
        self._expire()
        token = "st_" + secrets.token_urlsafe(18)
        self._issued[token] = (time.monotonic() + self._ttl_s, context)
        return token

    def redeem(self, token: str | None) -> CallContext | None:
        self._expire()
        if not token:
            return None
        # Look-up by the token itself: a dict hit leaks no timing about other tokens' contents.
        entry = self._issued.pop(token, None)
        return entry[1] if entry else None

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, (deadline, _) in self._issued.items() if deadline < now]:
            del self._issued[token]


class Runtime:
    def __init__(
        self,
        config: ServerConfig,
        agent: Agent,
        providers: Providers,
        queue_store: QueueStore | None = None,
        emit: EmitEvent | None = None,
    ) -> None:
        self.config = config
        self.agent = agent
        self.providers = providers
        self.queue_store = queue_store
        self.emit_event = emit
        # The agent's tools, plus the built-in handoff tool when it names human queues.
        builtin = [handoff_tool(agent.handoff_queues)] if agent.handoff_queues else []
        self.tools = ToolRegistry([*agent.tools, *builtin])
        # Handoffs waiting for the carrier to fetch the connect_stream `action` (no transfer extension).
        self.pending_transfers: dict[str, Handoff] = {}
        self.tokens = SessionTokens(config.session_token_ttl_s)
        self.active_calls: dict[str, CallRecord] = {}
        self.finished_calls: deque[CallRecord] = deque(maxlen=200)
        self.calls_ended = 0

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Hands an event to the durable outbox (when webhooks are configured)."""
        if self.emit_event is not None:
            await self.emit_event(event_type, data)

    def new_call_id(self) -> str:
        return "call_" + secrets.token_hex(8)

    def call_started(self, record: CallRecord) -> None:
        self.active_calls[record.call_id] = record
        log.info("call started", extra={"call_id": record.call_id, "caller": record.context.caller})

    def call_ended(self, record: CallRecord, reason: str) -> None:
        """Emitted exactly once per call."""
        if record.end_reason is not None:
            return
        record.end_reason = reason
        record.ended_at = time.time()
        self.active_calls.pop(record.call_id, None)
        self.finished_calls.append(record)
        self.calls_ended += 1
        log.info("call ended", extra={"call_id": record.call_id, "reason": reason})
