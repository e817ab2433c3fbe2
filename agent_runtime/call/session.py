"""One call's life: handshake, then an anyio task group of receive loop, turn loop, watchdog, keypad.

Receive loop (here): frames → codec → μ-law decode → listener (VAD, barge-in) → marks → turns queue.
Turn loop (call/turn_loop.py): greeting, then each caller turn answered by one generation (here):
STT → LLM → TTS → playout. Watchdog (call/watchdog.py): stalls and idle callers (never silent).
`stop` or a dropped socket cancels the group, which ends every task of the call at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio
import numpy as np

from agent_runtime.agent.definition import CallContext, render_template
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.orchestrator import Orchestrator, Outcome
from agent_runtime.agent.speech_text import clean_for_speech
from agent_runtime.audio.g711 import ulaw_decode
from agent_runtime.call.handshake import HandshakeError, ReceiveText, read_start
from agent_runtime.call.keypad import Keypad
from agent_runtime.call.ledger import PlayoutLedger
from agent_runtime.call.listener import Heard, Listener
from agent_runtime.call.playout import Playout
from agent_runtime.call.recording import CallRecorder, finish_recording, recorder_for
from agent_runtime.call.responder import Responder
from agent_runtime.call.turn_book import TurnBook
from agent_runtime.call.turn_loop import CallerTurn, TurnLoop
from agent_runtime.call.turns import EchoReference
from agent_runtime.call.watchdog import Watchdog
from agent_runtime.call.transfer import Transfer
from agent_runtime.carrier.events import Dtmf, Mark, Media, Stop, TransferAck
from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.runtime import CallRecord, Runtime, TurnTrace

log = logging.getLogger("agent_runtime.call")

__all__ = ["CallSession", "CallerTurn", "HandshakeError"]

SendText = Callable[[str], Awaitable[None]]



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
        self.generation_scope: anyio.CancelScope | None = None
        self.generation_done = True
        self.generation_started = 0.0
        self._is_greeting = False
        self.stalled = False
        self._said: list[str] = []  # the current generation's words, as sent to TTS
        self.outcome = Outcome()  # the current generation's
        self.unheard = ""  # words of the last interrupted generation the caller never heard
        self.ending = False  # a goodbye or hang-up is under way: failures no longer escalate
        self.hang_up_reason: str | None = None  # the model asked to end the call (end_call tool)
        self.turn_busy = False  # the turn loop is answering a turn
        self.last_caller_active_at = 0.0
        self.idle_prompts = 0  # unanswered "are you still there?" prompts in a row
        self._turns_dropped = 0
        self._failures = 0  # answers in a row the model could not give
        self.end_reason: str | None = None  # set when we end the call ourselves
        self.transfer = Transfer(self)
        self.started_at = 0.0  # when `start` arrived: the greeting's clock starts there
        self.recorder: CallRecorder | None = None

    async def open(self) -> CallContext:
        """Reads `connected` and `start`; redeems the session token. Raises HandshakeError."""
        context = await read_start(self._receive, self.codec, self.runtime.tokens)
        if context.call_id in self.runtime.active_calls:
            # Two streams under one call id would share its records, metrics and recording. No await
            # between this check and `run` registering the call, so two streams cannot both pass.
            raise HandshakeError(f"call {context.call_id} already has a live stream")
        self.started_at = anyio.current_time()  # the greeting's clock starts at `start`
        return context

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
            runtime.providers.llm, runtime.tools, context, self.conversation, self._fallback_line, agent.max_tool_rounds,
            filler_line=render_template(agent.filler_line, context, agent.variables),
        )
        self.context = context
        self._turns_send, turns_recv = anyio.create_memory_object_stream[CallerTurn](8)
        self.keypad = Keypad(agent.on_dtmf, context, agent.turns.dtmf_gap_ms, self._queue_keys)
        runtime.call_started(record)
        reason = "transport_lost"
        try:
            async with anyio.create_task_group() as tg:
                self._call_scope = tg.cancel_scope
                tg.start_soon(TurnLoop(self).run, turns_recv)
                tg.start_soon(Watchdog(self).run)
                tg.start_soon(self.keypad.run)
                reason = await self._receive_loop()
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
    async def _receive_loop(self) -> str:
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
                await self._on_dtmf(event.digit)
            elif isinstance(event, TransferAck):
                self.transfer.acknowledged(event)
            elif isinstance(event, Stop):
                return "transferred" if event.reason == "transferred" else "completed"

    def _queue_utterance(self, heard: Heard) -> None:
        audio = self.listener.take_utterance()
        if heard is Heard.TOO_LONG:
            log.info("caller turn hit max_turn_s (%s)", self.options.max_turn_action, extra={"call_id": self.context.call_id})
        if audio is not None:
            self._queue_turn(CallerTurn(audio=audio, barged=self.listener.ready_barged,
                                        speech_ms=self.listener.ready_speech_ms))

    def _queue_turn(self, turn: CallerTurn) -> None:
        turn.ended_at = anyio.current_time()
        if not turn.idle:
            self._caller_active()
        try:
            self._turns_send.send_nowait(turn)
        except anyio.WouldBlock:
            self._turns_dropped += 1
            if self._turns_dropped == 1:  # once per call: no log flood
                log.warning("caller turns arrive faster than they are answered; dropping the newest",
                            extra={"call_id": self.context.call_id})

    def _caller_active(self) -> None:
        """A key, a turn or a barge-in: the caller is there (the idle timer restarts)."""
        self.last_caller_active_at = anyio.current_time()
        self.idle_prompts = 0

    async def _on_dtmf(self, digit: str) -> None:
        self._caller_active()
        if self.options.dtmf_interrupts and self.agent_speaking:
            await self._barge_in()
        self.keypad.press(digit)

    def _queue_keys(self, keys: str) -> None:
        self._queue_turn(CallerTurn(text=f"(the caller pressed {keys} on the keypad)"))

    @property
    def agent_speaking(self) -> bool:
        """Speaking = a generation is producing audio, or its audio is still queued at the carrier."""
        return not self.generation_done or self.ledger.pending(self._generation) > 0

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
        self._caller_active()
        # Only marks echoed before this `clear` count as heard, so what was missed is known now;
        # if the caller only said "uh-huh", the turn loop says these words again (a false interruption).
        self.unheard = " ".join(self._said[self._heard_words(generation):])
        if self.generation_scope is not None:
            self.generation_scope.cancel()  # _generate records the heard text when it unwinds
        else:
            self._cut_history(generation)
        self.generation_done = True
        await self.playout.clear()

    def _heard_words(self, generation: int) -> int:
        return len(self.ledger.heard_text(generation).split())

    def _cut_history(self, generation: int) -> None:
        self.conversation.cut_to_heard(generation, self._heard_words(generation), self._said)

    # ---- generations ------------------------------------------------------------------
    async def generate(
        self, trace: TurnTrace, fixed_text: str | None = None, greeting: bool = False, remember: bool = True,
        last_resort: bool = False,
    ) -> None:
        """Runs one generation. Only its heard part stays in history when it is cut.

        `last_resort`: the fallback or goodbye line; if it is silent too, that is logged, not answered
        with yet another line, and it does not count as a failed answer."""
        self._generation += 1
        generation = trace.generation = self._generation
        trace.stages.setdefault("end_of_speech", anyio.current_time())
        trace.kind = "greeting" if greeting else "reply" if fixed_text is None else "line"
        self.book.begin(trace)
        self.playout.begin(generation)
        self.generation_done = False
        self.generation_started = anyio.current_time()
        self._is_greeting = greeting
        self.stalled = False
        outcome = self.outcome = Outcome()
        self._said = outcome.said_words
        with anyio.CancelScope() as scope:
            self.generation_scope = scope
            if fixed_text is not None:
                outcome.said_words.extend(clean_for_speech(fixed_text).split())
                if remember:
                    self.conversation.add_assistant(generation, fixed_text, (0, len(outcome.said_words)))
                cached = await self.responder.say_line(trace, fixed_text, self.runtime.lines)
                if greeting:
                    self.runtime.observer.metrics.greeting_cache.labels("hit" if cached else "miss").inc()
            else:
                await self.responder.reply(trace, self.orchestrator, generation, outcome)
        self.generation_scope = None
        self.generation_done = True
        trace.interrupted = scope.cancelled_caught and not self.stalled
        if trace.interrupted:
            self._cut_history(generation)
        trace.reply_text = fixed_text if fixed_text is not None else " ".join(outcome.said_words)
        self._finish_trace(trace)
        # Words that never became audio (a stalled or failing TTS or LLM) are silence: recover.
        silent = self.stalled or (not trace.interrupted and bool(outcome.said_words)
                                   and self.playout.first_frame_sent_at is None)
        if silent:
            self._cut_history(generation)  # history keeps only what was heard: little or nothing
            if self.stalled:
                await self.playout.clear()
            why = f"sent no audio for {self.options.no_audio_timeout_s:.1f} s" if self.stalled else "TTS gave no audio"
            if last_resort:
                log.error("generation %d (a last-resort line) %s", generation, why, extra={"call_id": self.context.call_id})
            else:
                log.warning("generation %d %s; speaking the fallback line", generation, why, extra={"call_id": self.context.call_id})
                await self.speak_fallback(TurnTrace(generation=0))
        if (fixed_text is None or silent) and not last_resort:  # a last resort's failure is its generation's
            await self.count_failure(outcome.failed or silent)

    async def speak_fallback(self, trace: TurnTrace) -> None:
        """The fallback line, not written into history (cached at start-up, so TTS is not needed)."""
        await self.generate(trace, fixed_text=self._fallback_line, remember=False, last_resort=True)

    async def count_failure(self, failed: bool) -> None:
        """After repeated failures, a polite goodbye rather than a caller stuck in a loop."""
        self._failures = self._failures + 1 if failed else 0
        if self._failures < self.runtime.agent.max_consecutive_failures or self.ending:
            return
        self.ending = True
        log.warning("%d failed answers in a row; ending the call politely", self._failures, extra={"call_id": self.context.call_id})
        goodbye = render_template(self.runtime.agent.goodbye_line, self.context, self.runtime.agent.variables)
        await self.generate(TurnTrace(generation=0), fixed_text=goodbye, remember=False, last_resort=True)
        await self.hang_up("failed")

    async def hand_off(self, queue: str, reason: str, summary: str) -> str:
        """CallControls: accepted handoffs are stored before anything else happens."""
        return await self.transfer.accept(queue, reason, summary)

    async def hang_up_after_speech(self, reason: str) -> str:
        """CallControls: the call ends once this generation's words have played (their marks are back)."""
        self.hang_up_reason = reason
        return "ok: the call ends after your last words have played"

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

    def queue_idle_turn(self) -> None:
        """Watchdog: the caller has been silent too long; the turn loop asks if they are still there."""
        self.idle_prompts += 1
        self._queue_turn(CallerTurn(idle=True))

    @property
    def turns_waiting(self) -> int:
        return self._turns_send.statistics().current_buffer_used

    def stall(self) -> None:
        """Watchdog: the generation sent no audio for no_audio_timeout_s; `_generate` recovers."""
        self.stalled = True
        if self.generation_scope is not None:
            self.generation_scope.cancel()

    def _finish_trace(self, trace: TurnTrace) -> None:
        self.book.finished(trace)  # published once its first mark is back (call/turn_book.py)

    def _publish_turn(self, trace: TurnTrace, started_epoch_s: float) -> None:
        assert self.record is not None
        self.record.turns.append(trace)
        self.runtime.observer.turn(self.context.call_id, trace.generation, trace.kind, trace.interrupted,
                                   started_epoch_s, trace.stages)
