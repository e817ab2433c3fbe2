"""The Runtime owns what every call shares: configuration, the agent, providers, call records.

No global state: the server, the CLI and tests each build their own Runtime.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from agent_runtime.agent.definition import Agent, CallContext
from agent_runtime.agent.tools import ToolRegistry
from agent_runtime.config import ServerConfig
from agent_runtime.handoff.announce import relay
from agent_runtime.handoff.store import QueueStore
from agent_runtime.call.end_call_tool import end_call_tool
from agent_runtime.handoff.tool import handoff_tool
from agent_runtime.call.line_cache import LineCache
from agent_runtime.observability import Observer
from agent_runtime.providers.base import Providers
from agent_runtime.webhooks.events import CALL_ENDED, CALL_STARTED

# `emit(event_type, data)` or `emit(event_type, data, event_id=…)` → the event is durably stored
# (e.g. Outbox.enqueue). Accepting `event_id` lets handoff events relayed again after a crash be
# stored once; an emit without it still works, at the price of a possible duplicate.
EmitEvent = Callable[..., Awaitable[Any]]

log = logging.getLogger("agent_runtime")


@dataclass(slots=True)
class TurnTrace:
    """Stage times of one agent response, in ms since the caller's end of speech (the stream's start
    for the greeting): end_of_speech, stt_done, llm_first_token, first_sentence (to TTS),
    tts_first_audio, first_frame_sent, first_mark (the carrier confirmed the first chunk played).
    A stage that did not happen is absent. See call/turn_book.py and observability/."""

    generation: int
    kind: str = "reply"  # "greeting", "reply", or "line" (a fixed line: fallback, goodbye, handoff)
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
    # From inbound Rozper webhooks (webhooks/records.py): (type, data) of call.* events.
    carrier_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    recording_url: str | None = None


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
        if agent.can_end_call:
            builtin.append(end_call_tool())
        self.tools = ToolRegistry([*agent.tools, *builtin])
        self._emit_takes_id = _accepts_event_id(emit)
        self._relaying = anyio.Lock()
        # Media streams past the upgrade check, counted before `accept` (server/app.py): the
        # max_calls limit holds even while streams have not reached `start` yet.
        self.stream_slots = 0
        self.tokens = SessionTokens(config.session_token_ttl_s)
        self.active_calls: dict[str, CallRecord] = {}
        self.finished_calls: deque[CallRecord] = deque(maxlen=200)
        self.calls_ended = 0
        self.observer = Observer(lambda: len(self.active_calls), lambda: self.calls_ended)  # metrics, turn log, spans
        self.lines = LineCache()  # the agent's fixed lines as audio, ready to send (call/line_cache.py)
        # Events from sync code (call start/end) wait here for `pump_events` to hand them to `emit`:
        # the call path never waits on the outbox's disk write.
        self._events_in, self._events_out = anyio.create_memory_object_stream[tuple[str, dict[str, Any]]](1000)

    async def emit(self, event_type: str, data: dict[str, Any], event_id: str | None = None) -> None:
        """Hands an event to the durable outbox (when webhooks are configured)."""
        if self.emit_event is None:
            return
        if event_id is not None and self._emit_takes_id:
            await self.emit_event(event_type, data, event_id=event_id)
        else:
            await self.emit_event(event_type, data)

    async def announce_handoffs(self) -> int:
        """Relays the queue store's unannounced handoff events to the outbox (handoff/announce.py).
        Runs after each handoff change and at start-up (`pump_events`), so an event written just
        before a crash is delivered by the next process."""
        if self.queue_store is None:
            return 0
        async with self._relaying:  # one relay at a time: events keep their order
            return await relay(self.queue_store, self.emit)

    def emit_soon(self, event_type: str, data: dict[str, Any]) -> None:
        """For sync callers: the event is emitted by `pump_events` (lost if the process dies first)."""
        if self.emit_event is None:
            return
        try:
            self._events_in.send_nowait((event_type, data))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            log.error("event %s dropped: the event pump is full or stopped", event_type)

    async def pump_events(self) -> None:
        """Runs beside the server; ends once `close_events` was called and the backlog is emitted.

        First it relays handoff events a previous process stored but did not hand to the outbox."""
        try:
            relayed = await self.announce_handoffs()
            if relayed:
                log.warning("relayed %d handoff event(s) left unannounced by a previous process", relayed)
        except Exception:
            log.exception("handoff events could not be relayed at start-up; they stay stored for the next try")
        async with self._events_out:
            async for event_type, data in self._events_out:
                try:
                    await self.emit(event_type, data)
                except Exception:
                    log.exception("event %s could not be stored", event_type)

    def close_events(self) -> None:
        """No more events (the server has stopped): lets `pump_events` finish."""
        self._events_in.close()

    def new_call_id(self) -> str:
        return "call_" + secrets.token_hex(8)

    def call_started(self, record: CallRecord) -> None:
        self.active_calls[record.call_id] = record
        log.info("call started", extra={"call_id": record.call_id, "caller": record.context.caller})
        context = record.context
        self.emit_soon(CALL_STARTED, {
            "call_id": record.call_id, "from": context.caller, "to": context.callee, "direction": context.direction,
        })

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
        try:
            duration_s: float | None = round(anyio.current_time() - record.started_at, 3)  # both monotonic
        except RuntimeError:  # called outside an event loop (tests)
            duration_s = None
        self.emit_soon(CALL_ENDED, {
            "call_id": record.call_id, "reason": reason, "duration_s": duration_s, "ended_at": int(record.ended_at),
        })


def _accepts_event_id(emit: EmitEvent | None) -> bool:
    if emit is None:
        return False
    try:
        parameters = inspect.signature(emit).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the simple form
        return False
    return any(p.name == "event_id" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
