"""One call's life: handshake, then an anyio task group of receive loop, turn loop and watchdog.

Receive loop: frames → codec → μ-law decode → listener (VAD, barge-in) → marks → turns queue.
Turn loop: greeting, then for each caller turn STT → LLM → TTS → playout, one generation at a time.
Watchdog: a generation that sends no audio is replaced by the fallback line (never silent).
`stop` or a dropped socket cancels the group, which ends every task of the call at once.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import replace
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream

from agent_runtime.agent.definition import CallContext, render_template
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.orchestrator import Orchestrator, Outcome
from agent_runtime.agent.speech_text import clean_for_speech
from agent_runtime.audio.g711 import ulaw_decode
from agent_runtime.call.ledger import PlayoutLedger
from agent_runtime.call.listener import SAMPLE_RATE, Heard, Listener
from agent_runtime.call.playout import Playout
from agent_runtime.call.recording import CallRecorder, finish_recording, recorder_for
from agent_runtime.call.responder import Responder
from agent_runtime.call.turn_book import TurnBook
from agent_runtime.call.turns import EchoReference
from agent_runtime.call.transfer import Transfer
from agent_runtime.carrier.events import Dtmf, Mark, Media, Start, Stop, TransferAck
from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.runtime import CallRecord, Runtime, TurnTrace

log = logging.getLogger("agent_runtime.call")

ReceiveText = Callable[[], Awaitable[str | bytes | None]]  # None when the socket closed
SendText = Callable[[str], Awaitable[None]]

HANDSHAKE_TIMEOUT_S = 10.0
SUPPORTED_MEDIA_FORMAT = ("audio/x-mulaw", 8000, 1)  # what Rozper and Twilio always send (protocols.md §1)
WATCHDOG_PERIOD_S = 0.25


class HandshakeError(Exception):
    """The stream did not open with a valid `start` carrying a valid session token."""


@dataclass(slots=True)
class CallerTurn:
    audio: np.ndarray | None = None  # an utterance (int16, 8 kHz)
    text: str | None = None  # already text (DTMF)
    ended_at: float = 0.0


class CallSession:
    def __init__(self, runtime: Runtime, receive: ReceiveText, send: SendText) -> None:
        self.runtime = runtime
        self._receive = receive
        self._send_raw = send
        self.codec = MediaStreamCodec()
        self.ledger = PlayoutLedger()
        self.closed = False
        self.record: CallRecord | None = None
        self._generation = 0
        self._generation_scope: anyio.CancelScope | None = None
        self._generation_done = True
        self._generation_started = 0.0
        self._is_greeting = False
        self._stalled = False
        self._said: list[str] = []  # the current generation's words, as sent to TTS
        self._failures = 0  # answers in a row the model could not give
        self.end_reason: str | None = None  # set when we end the call ourselves
        self.transfer = Transfer(self)
        self._started_at = 0.0  # when `start` arrived: the greeting's clock starts there
        self.recorder: CallRecorder | None = None

    # ---- handshake --------------------------------------------------------------------
    async def open(self) -> CallContext:
        """Reads `connected` and `start`; redeems the session token. Raises HandshakeError."""
        with anyio.move_on_after(HANDSHAKE_TIMEOUT_S):
            while True:
                frame = await self._receive()
                if frame is None:
                    raise HandshakeError("socket closed before start")
                event = self.codec.decode(frame)
                if isinstance(event, Start):
                    self._started_at = anyio.current_time()
                    if (event.encoding, event.sample_rate, event.channels) != SUPPORTED_MEDIA_FORMAT:
                        # Decoding A-law or 16 kHz as 8 kHz μ-law would feed the VAD and STT noise.
                        raise HandshakeError(f"unsupported mediaFormat {event.encoding} {event.sample_rate} Hz x"
                                             f"{event.channels}; this runtime takes audio/x-mulaw 8000 Hz mono")
                    context = self.runtime.tokens.redeem(event.custom_parameters.get("session_token"))
                    if context is None:
                        raise HandshakeError("missing or invalid session_token")
                    return CallContext(
                        call_id=context.call_id,
                        caller=event.from_ or event.custom_parameters.get("from") or context.caller,
                        callee=event.to or event.custom_parameters.get("to") or context.callee,
                        direction=event.direction or context.direction,
                        custom_parameters={k: v for k, v in event.custom_parameters.items() if k != "session_token"},
                    )
                if isinstance(event, Stop):
                    raise HandshakeError("stop before start")
        raise HandshakeError("no start within timeout")

    # ---- the call -----------------------------------------------------------------------
    async def run(self, context: CallContext) -> str:
        """Runs the call until `stop` or the socket drops; returns the end reason."""
        context = replace(context, controls=self)  # tools may hand the call off
        runtime = self.runtime
        agent = runtime.agent
        self.options = agent.turns
        self.record = record = CallRecord(call_id=context.call_id, context=context, started_at=anyio.current_time())
        self.listener = Listener(agent.vad, agent.turns)
        self.echo = EchoReference(agent.turns.echo_window_ms / 1000.0)
        codec = self.codec
        self.recorder, encode_media, encode_mark = recorder_for(context.custom_parameters, codec.encode_media, codec.encode_mark)
        self.playout = Playout(self._send, encode_media, encode_mark, codec.encode_clear, self.ledger, self.echo)
        self.book = TurnBook(self._publish_turn)
        self.conversation = Conversation(render_template(agent.system_prompt, context, agent.variables))
        self._fallback_line = render_template(agent.fallback_line, context, agent.variables)
        self.responder = Responder(runtime.providers.tts, self.playout, context.call_id)
        self.orchestrator = Orchestrator(
            runtime.providers.llm, runtime.tools, context, self.conversation, self._fallback_line, agent.max_tool_rounds
        )
        self._context = context
        self._turns_send, turns_recv = anyio.create_memory_object_stream[CallerTurn](8)
        runtime.call_started(record)
        reason = "transport_lost"
        try:
            async with anyio.create_task_group() as tg:
                self._call_scope = tg.cancel_scope
                tg.start_soon(self._turn_loop, turns_recv)
                tg.start_soon(self._watchdog)
                reason = await self._receive_loop(tg)
                tg.cancel_scope.cancel()
            reason = self.end_reason or reason
        finally:
            self.closed = True
            record.transcript = self.conversation.transcript()
            record.malformed_frames = codec.malformed
            self.book.close()
            runtime.call_ended(record, reason)
            runtime.observer.call_ended(record.malformed_frames, record.barge_ins)
            if self.recorder is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(30.0):  # the call is over; its file is not
                    await finish_recording(self.recorder, runtime, record.call_id)
        return reason

    async def _send(self, text: str) -> None:
        if self.closed:
            return  # never send after close
        try:
            await self._send_raw(text)
        except Exception:  # the socket is gone; the receive loop sees the close and ends the call
            self.closed = True

    # ---- receive loop: the per-frame path (no logging, no blocking) -------------------------
    async def _receive_loop(self, tg: anyio.abc.TaskGroup) -> str:
        decode = self.codec.decode
        listener = self.listener
        recorder = self.recorder
        while True:
            frame = await self._receive()
            if frame is None:
                return "transport_lost"
            event = decode(frame)
            if event is None:
                continue  # malformed or unknown: counted by the codec, the call goes on
            if isinstance(event, Media):
                if recorder is not None:
                    recorder.inbound(event.payload, event.timestamp_ms)
                speaking = self._can_be_interrupted()
                echo = self.echo.level(anyio.current_time()) if speaking else -np.inf
                heard = listener.push(ulaw_decode(event.payload), speaking, echo)
                if heard is Heard.NOTHING:
                    continue
                if heard is Heard.BARGE_IN:
                    await self._barge_in()
                elif heard is Heard.UTTERANCE or heard is Heard.TOO_LONG:
                    self._queue_utterance(heard)
                elif heard is Heard.IGNORED:
                    log.debug("ignored caller sound over agent speech (echo or backchannel)")
            elif isinstance(event, Mark):
                chunk = self.ledger.on_mark(event.name)
                if chunk is not None:
                    self.book.heard(chunk.generation)
                if recorder is not None:
                    recorder.mark(event.name, chunk is not None)
            elif isinstance(event, Dtmf):
                await self._on_dtmf(event.digit, tg)
            elif isinstance(event, TransferAck):
                self.transfer.acknowledged(event)
            elif isinstance(event, Stop):
                return "transferred" if event.reason == "transferred" else "completed"

    def _queue_utterance(self, heard: Heard) -> None:
        audio = self.listener.take_utterance()
        if heard is Heard.TOO_LONG:
            log.info("caller turn hit max_turn_s (%s)", self.options.max_turn_action, extra={"call_id": self._context.call_id})
        if audio is not None:
            self._queue_turn(CallerTurn(audio=audio))

    def _queue_turn(self, turn: CallerTurn) -> None:
        turn.ended_at = anyio.current_time()
        try:
            self._turns_send.send_nowait(turn)
        except anyio.WouldBlock:
            log.warning("caller turns backed up; dropping one", extra={"call_id": self._context.call_id})

    async def _on_dtmf(self, digit: str, tg: anyio.abc.TaskGroup) -> None:
        handler = self.runtime.agent.on_dtmf
        if handler is not None:
            result = handler(digit, self._context)
            if inspect.isawaitable(result):
                tg.start_soon(_await, result)
        if self.options.dtmf_interrupts and self.agent_speaking:
            await self._barge_in()
        self._queue_turn(CallerTurn(text=f"(the caller pressed {digit} on the keypad)"))

    @property
    def agent_speaking(self) -> bool:
        """Speaking = a generation is producing audio, or its audio is still queued at the carrier."""
        return not self._generation_done or self.ledger.pending(self._generation) > 0

    def _can_be_interrupted(self) -> bool:
        # The greeting cannot be wiped by line noise before a single frame of it went out.
        if self._is_greeting and self.playout.first_frame_sent_at is None:
            return False
        return self.agent_speaking

    async def _barge_in(self) -> None:
        """Exactly one `clear`; the generation stops; history keeps only what was heard."""
        generation = self._generation
        assert self.record is not None
        self.record.barge_ins += 1
        if self._generation_scope is not None:
            self._generation_scope.cancel()  # _generate records the heard text when it unwinds
        else:
            self._cut_history(generation)
        self._generation_done = True
        await self.playout.clear()

    def _cut_history(self, generation: int) -> None:
        heard = len(self.ledger.heard_text(generation).split())
        self.conversation.cut_to_heard(generation, heard, self._said)

    # ---- turns --------------------------------------------------------------------------
    async def _turn_loop(self, turns: MemoryObjectReceiveStream[CallerTurn]) -> None:
        agent = self.runtime.agent
        greeting = render_template(agent.greeting, self._context, agent.variables)
        trace = TurnTrace(generation=0, stages={"end_of_speech": self._started_at or anyio.current_time()})
        await self._generate(trace, fixed_text=greeting, greeting=True)
        async with turns:
            async for turn in turns:
                trace = TurnTrace(generation=0)
                trace.stages["end_of_speech"] = turn.ended_at
                text = turn.text
                if text is None and turn.audio is not None:
                    text = await self._transcribe(turn.audio, trace)
                if text is None:
                    continue
                trace.user_text = text
                self.conversation.add_user(text)
                await self._generate(trace)
                if self.transfer.accepted is not None:
                    await self.transfer.complete()  # the caller goes to people; this loop's work is done
                    return

    async def _transcribe(self, audio: np.ndarray, trace: TurnTrace) -> str | None:
        try:
            with anyio.fail_after(self.options.stt_timeout_s):
                text = (await self.runtime.providers.stt.transcribe(audio, SAMPLE_RATE)).strip()
        except Exception as exc:  # includes the timeout: the caller hears the fallback, not silence
            log.warning("stt failed (%s); speaking the fallback line", type(exc).__name__, extra={"call_id": self._context.call_id})
            await self._generate(trace, fixed_text=self._fallback_line, remember=False)
            return None
        trace.stages["stt_done"] = anyio.current_time()
        if not text:
            log.info("empty transcript; staying silent on purpose", extra={"call_id": self._context.call_id})
            return None
        return text

    async def _generate(
        self, trace: TurnTrace, fixed_text: str | None = None, greeting: bool = False, remember: bool = True
    ) -> None:
        """Runs one generation. Only its heard part stays in history when it is cut."""
        self._generation += 1
        generation = trace.generation = self._generation
        trace.stages.setdefault("end_of_speech", anyio.current_time())
        trace.kind = "greeting" if greeting else "reply" if fixed_text is None else "line"
        self.book.begin(trace)
        self.playout.begin(generation)
        self._generation_done = False
        self._generation_started = anyio.current_time()
        self._is_greeting = greeting
        self._stalled = False
        outcome = Outcome()
        self._said = outcome.said_words
        with anyio.CancelScope() as scope:
            self._generation_scope = scope
            if fixed_text is not None:
                outcome.said_words.extend(clean_for_speech(fixed_text).split())
                if remember:
                    self.conversation.add_assistant(generation, fixed_text, (0, len(outcome.said_words)))
                if greeting:
                    cached = await self.responder.greet(trace, fixed_text, self.runtime.greetings)
                    self.runtime.observer.metrics.greeting_cache.labels("hit" if cached else "miss").inc()
                else:
                    await self.responder.say(trace, fixed_text)
            else:
                await self.responder.reply(trace, self.orchestrator, generation, outcome)
        self._generation_scope = None
        self._generation_done = True
        trace.interrupted = scope.cancelled_caught
        if trace.interrupted:
            self._cut_history(generation)
        trace.reply_text = fixed_text if fixed_text is not None else " ".join(outcome.said_words)
        self._finish_trace(trace)
        if self._stalled:
            log.warning("generation %d sent no audio for %.1f s; speaking the fallback line", generation,
                        self.options.no_audio_timeout_s, extra={"call_id": self._context.call_id})
            await self.playout.clear()
            outcome.failed = True
            await self._generate(TurnTrace(generation=0), fixed_text=self._fallback_line, remember=False)
        if fixed_text is None:
            await self._count_failure(outcome.failed)

    async def _count_failure(self, failed: bool) -> None:
        """After repeated failures, a polite goodbye rather than a caller stuck in a loop."""
        self._failures = self._failures + 1 if failed else 0
        if self._failures < self.runtime.agent.max_consecutive_failures:
            return
        log.warning("%d failed answers in a row; ending the call politely", self._failures, extra={"call_id": self._context.call_id})
        goodbye = render_template(self.runtime.agent.goodbye_line, self._context, self.runtime.agent.variables)
        await self._generate(TurnTrace(generation=0), fixed_text=goodbye, remember=False)
        await self.hang_up("failed")

    async def hand_off(self, queue: str, reason: str, summary: str) -> str:
        """CallControls: accepted handoffs are stored before anything else happens."""
        return await self.transfer.accept(queue, reason, summary)

    async def wait_played(self, timeout_s: float) -> None:
        """Until the carrier confirmed every chunk of the current generation (or the timeout)."""
        with anyio.move_on_after(timeout_s):
            while self.ledger.pending(self._generation) > 0:
                await anyio.sleep(0.02)

    async def hang_up(self, reason: str) -> None:
        """Ends the call from our side once the last words have played (their marks came back)."""
        await self.wait_played(self.playout.queued_s() + 2.0)
        if self.codec.supports("hangup"):
            await self._send(self.codec.encode_hangup("completed"))
        await self.end_call(reason)

    async def end_call(self, reason: str) -> None:
        """Closes the stream from our side: the server closes the WebSocket."""
        self.end_reason = reason
        self._call_scope.cancel()

    async def _watchdog(self) -> None:
        """Never silent: a generation that should be speaking but sends nothing is replaced."""
        timeout = self.options.no_audio_timeout_s
        while True:
            await anyio.sleep(WATCHDOG_PERIOD_S)
            if self._generation_done or self._generation_scope is None or self._stalled:
                continue
            now = anyio.current_time()
            last_audio = max(self.playout.last_audio_sent_at, self._generation_started)
            if now - last_audio > timeout and self.playout.queued_s() == 0.0:
                self._stalled = True
                self._generation_scope.cancel()

    def _finish_trace(self, trace: TurnTrace) -> None:
        self.book.finished(trace)  # published once its first mark is back (call/turn_book.py)

    def _publish_turn(self, trace: TurnTrace, started_epoch_s: float) -> None:
        assert self.record is not None
        self.record.turns.append(trace)
        self.runtime.observer.turn(self._context.call_id, trace.generation, trace.kind, trace.interrupted,
                                   started_epoch_s, trace.stages)


async def _await(result: Awaitable[None]) -> None:
    try:
        await result
    except Exception:
        log.exception("dtmf handler failed")
