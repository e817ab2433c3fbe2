"""Handing a live call to a human queue.

Order matters (S15): the handoff record is stored (and the `agent.handoff` event queued)
when the handoff is accepted; then the caller hears the bridging line; then the carrier is
told: by the negotiated `transfer` stream message, or by closing the stream so the carrier
fetches the connect_stream `action`, which answers with the transfer. Nothing hangs up the call.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from agent_runtime.agent.definition import render_template
from agent_runtime.agent.tools import ToolError
from agent_runtime.carrier.events import TransferAck
from agent_runtime.handoff.store import Handoff, new_handoff_id
from agent_runtime.runtime import TurnTrace

if TYPE_CHECKING:
    from agent_runtime.call.session import CallSession

log = logging.getLogger("agent_runtime.handoff")
ACK_TIMEOUT_S = 5.0


class Transfer:
    def __init__(self, session: CallSession) -> None:
        self._session = session
        self.accepted: Handoff | None = None
        self._ack = anyio.Event()
        self._ack_status: TransferAck | None = None

    async def accept(self, queue: str, reason: str, summary: str) -> str:
        session = self._session
        if self.accepted is not None:
            return f"already transferring to {self.accepted.queue}"
        store = session.runtime.queue_store
        if store is None:
            raise ToolError("no human queue is configured on this runtime")
        context = session._context
        messages = session.conversation.messages
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user" and m.get("content")), "")
        record = Handoff(
            id=new_handoff_id(), call_id=context.call_id, queue=queue, reason=reason, summary=summary,
            caller=context.caller, callee=context.callee, last_utterance=last,
            transcript=[{"role": role, "text": text} for role, text in session.conversation.transcript()],
            context=dict(context.custom_parameters),
        )
        await store.enqueue(record)  # durable before the caller hears a word about it
        self.accepted = record
        try:
            await self._announce(record, last)
        except Exception:  # the handoff is stored; a failing outbox must not undo the transfer
            log.exception("agent.handoff event not written", extra={"call_id": context.call_id, "handoff_id": record.id})
        log.info("handoff accepted", extra={"call_id": context.call_id, "queue": queue, "handoff_id": record.id})
        return f"accepted: the caller is being transferred to the {queue} queue"

    async def _announce(self, record: Handoff, last: str) -> None:
        session, context = self._session, self._session._context
        await session.runtime.emit("agent.handoff", {
            "call_id": context.call_id, "stream_id": session.codec.stream_sid, "handoff_id": record.id,
            "target": {"type": "queue", "queue": record.queue}, "reason": record.reason, "summary": record.summary,
            "context": {"caller": context.caller, "last_utterance": last},
        })

    def acknowledged(self, ack: TransferAck) -> None:
        self._ack_status = ack
        self._ack.set()

    async def complete(self) -> None:
        """Bridging line, then the carrier. Called by the turn loop after the generation."""
        session, record = self._session, self.accepted
        assert record is not None
        agent = session.runtime.agent
        line = render_template(agent.handoff_line, session._context, agent.variables)
        await session._generate(TurnTrace(generation=0), fixed_text=line)
        await session.wait_played(session.playout.queued_s() + 2.0)
        codec = session.codec
        if codec.supports("transfer"):
            await session._send(codec.encode_transfer(
                {"type": "queue", "queue": record.queue}, record.reason, record.summary, {"handoff_id": record.id}))
            with anyio.move_on_after(ACK_TIMEOUT_S):
                await self._ack.wait()
            ack = self._ack_status
            if ack is not None and ack.status == "accepted":
                session.end_reason = "transferred"  # the carrier's `stop` follows; we hang up nothing
                return
            log.warning("transfer refused (%s)", ack.error if ack else "no answer", extra={"call_id": record.call_id})
            self.accepted = None
            failed = render_template(agent.transfer_failed_line, session._context, agent.variables)
            await session._generate(TurnTrace(generation=0), fixed_text=failed)
            return
        # No transfer extension: end the stream; the carrier asks the `action` URL, which transfers.
        session.runtime.pending_transfers[record.call_id] = record
        await session.end_call("transferred")
