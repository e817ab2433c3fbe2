"""Handing a live call to a human queue.

Order matters (S15): the handoff record is stored, with its `agent.handoff` event in the same
commit (relayed to the outbox right after: handoff/announce.py), when the handoff is accepted;
then the caller hears the bridging line; then the carrier is told: by the negotiated `transfer`
stream message, or by closing the stream so the carrier fetches the connect_stream `action`,
which looks the waiting handoff up in the queue store (server/app.py) and answers with the
transfer, so a restart in between loses nothing. Nothing hangs up the call.

A transfer the carrier refuses, or never acknowledges, takes the handoff out of the queue
(status `failed`, with the reason) and emits `agent.handoff_failed`; the caller hears the
agent's transfer-failed line and the call goes on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from agent_runtime.agent.definition import render_template
from agent_runtime.agent.tools import ToolError
from agent_runtime.carrier.events import TransferAck
from agent_runtime.handoff.announce import handoff_event, handoff_failed_event
from agent_runtime.handoff.store import Handoff, HandoffConflict, new_handoff_id
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
        context = session.context
        messages = session.conversation.messages
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user" and m.get("content")), "")
        record = Handoff(
            id=new_handoff_id(), call_id=context.call_id, queue=queue, reason=reason, summary=summary,
            caller=context.caller, callee=context.callee, last_utterance=last,
            transcript=[{"role": role, "text": text} for role, text in session.conversation.transcript()],
            context=dict(context.custom_parameters),
        )
        self._ack, self._ack_status = anyio.Event(), None  # a new attempt waits for its own answer
        await store.enqueue(record, handoff_event(record, session.codec.stream_sid))  # durable before the caller hears a word
        self.accepted = record
        await self._relay()
        log.info("handoff accepted", extra={"call_id": context.call_id, "queue": queue, "handoff_id": record.id})
        return f"accepted: the caller is being transferred to the {queue} queue"

    async def _relay(self) -> None:
        try:
            await self._session.runtime.announce_handoffs()
        except Exception:  # the event is stored with the handoff; the next relay (or a restart) sends it
            log.exception("handoff event not relayed yet", extra={"call_id": self._session.context.call_id})

    async def _failed(self, record: Handoff, error: str) -> None:
        """The carrier will not bridge this caller: the handoff leaves the queue, and the world is told."""
        store = self._session.runtime.queue_store
        assert store is not None
        try:
            await store.close(record.id, "failed", error, handoff_failed_event(record, self._session.codec.stream_sid, error))
        except HandoffConflict:  # a person claimed it meanwhile: theirs now, leave it be
            log.warning("failed transfer's handoff is no longer waiting", extra={"call_id": record.call_id, "handoff_id": record.id})
            return
        except Exception:
            log.exception("could not mark the handoff failed", extra={"call_id": record.call_id, "handoff_id": record.id})
            return
        await self._relay()

    def acknowledged(self, ack: TransferAck) -> None:
        self._ack_status = ack
        self._ack.set()

    async def complete(self) -> None:
        """Bridging line, then the carrier. Called by the turn loop after the generation."""
        session, record = self._session, self.accepted
        assert record is not None
        agent = session.runtime.agent
        line = render_template(agent.handoff_line, session.context, agent.variables)
        await session.generate(TurnTrace(generation=0), fixed_text=line)
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
            error = (ack.error or ack.status or "failed") if ack is not None else "no_answer"
            log.warning("transfer refused (%s)", error, extra={"call_id": record.call_id, "handoff_id": record.id})
            self.accepted = None
            await self._failed(record, error)
            failed = render_template(agent.transfer_failed_line, session.context, agent.variables)
            await session.generate(TurnTrace(generation=0), fixed_text=failed)
            return
        # No transfer extension: end the stream; the carrier asks the `action` URL, which finds the
        # waiting handoff in the queue store and answers with the transfer.
        await session.end_call("transferred")
