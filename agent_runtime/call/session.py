"""One call's life: handshake, then an anyio task group of the receive loop and the turn loop.

Receive loop: frames → codec → μ-law decode → VAD → utterances / barge-in / marks.
Turn loop: greeting, then for each caller turn STT → LLM → TTS → playout, one generation at a time.
`stop` or a dropped socket cancels the group, which ends every task of the call at once.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream

from agent_runtime.agent.definition import CallContext, render_template
from agent_runtime.agent.history import Conversation
from agent_runtime.audio.g711 import ulaw_decode
from agent_runtime.audio.vad import SpeechEnd, SpeechStart, VoiceActivityDetector
from agent_runtime.call.ledger import PlayoutLedger
from agent_runtime.call.playout import SAMPLE_RATE, Playout
from agent_runtime.call.responder import Responder
from agent_runtime.carrier.events import Dtmf, Mark, Media, Start, Stop
from agent_runtime.carrier.media_stream import MediaStreamCodec
from agent_runtime.runtime import CallRecord, Runtime, TurnTrace

log = logging.getLogger("agent_runtime.call")

ReceiveText = Callable[[], Awaitable[str | bytes | None]]  # None when the socket closed
SendText = Callable[[str], Awaitable[None]]

HANDSHAKE_TIMEOUT_S = 10.0
PREROLL_FRAMES = 15  # 300 ms of audio kept before speech is confirmed, so the first word is whole
MAX_TURN_S = 30.0  # bounds the utterance buffer: hold music cannot keep a turn open forever
BARGE_IN_MIN_SPEECH_MS = 120  # confirmed caller speech needed to interrupt the agent


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
        runtime = self.runtime
        agent = runtime.agent
        self.record = record = CallRecord(call_id=context.call_id, context=context, started_at=anyio.current_time())
        self.vad = VoiceActivityDetector(SAMPLE_RATE, agent.vad)
        self.playout = Playout(
            self._send, self.codec.encode_media, self.codec.encode_mark, self.codec.encode_clear, self.ledger
        )
        self.conversation = Conversation(render_template(agent.system_prompt, context, agent.variables))
        self.responder = Responder(
            runtime.providers.llm,
            runtime.providers.tts,
            self.playout,
            context.call_id,
            render_template(agent.fallback_line, context, agent.variables),
        )
        self._context = context
        self._turns_send, turns_recv = anyio.create_memory_object_stream[CallerTurn](8)
        self._preroll: deque[np.ndarray] = deque(maxlen=PREROLL_FRAMES)
        self._utterance: list[np.ndarray] = []
        self._utterance_samples = 0
        runtime.call_started(record)
        reason = "transport_lost"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._turn_loop, turns_recv)
                reason = await self._receive_loop()
                tg.cancel_scope.cancel()
        finally:
            self.closed = True
            record.transcript = self.conversation.transcript()
            record.malformed_frames = self.codec.malformed
            runtime.call_ended(record, reason)
        return reason

    async def _send(self, text: str) -> None:
        if self.closed:
            return  # never send after close
        try:
            await self._send_raw(text)
        except Exception:  # the socket is gone; the receive loop sees the close and ends the call
            self.closed = True

    async def _receive_loop(self) -> str:
        decode = self.codec.decode
        while True:
            frame = await self._receive()
            if frame is None:
                return "transport_lost"
            event = decode(frame)
            if event is None:
                continue  # malformed or unknown: counted by the codec, the call goes on
            if isinstance(event, Media):
                if self._on_audio(ulaw_decode(event.payload)):
                    await self._barge_in()
            elif isinstance(event, Mark):
                self.ledger.on_mark(event.name)
            elif isinstance(event, Dtmf):
                self._queue_turn(CallerTurn(text=f"(the caller pressed {event.digit} on the keypad)"))
            elif isinstance(event, Stop):
                return "transferred" if event.reason == "transferred" else "completed"

    # ---- per-frame path: no logging, no blocking ------------------------------------------
    def _on_audio(self, pcm: np.ndarray) -> bool:
        """Feeds one inbound payload to the VAD; returns True when the caller is barging in."""
        vad = self.vad
        for vad_event in vad.push(pcm):
            if isinstance(vad_event, SpeechStart):
                self._utterance = list(self._preroll)
                self._utterance_samples = sum(len(p) for p in self._utterance)
            elif isinstance(vad_event, SpeechEnd):
                self._end_utterance()
        if not vad.speaking:
            self._preroll.append(pcm)
            return False
        self._utterance.append(pcm)
        self._utterance_samples += len(pcm)
        if self._utterance_samples > MAX_TURN_S * SAMPLE_RATE:
            log.info("caller turn hit %.0f s limit; ending it", MAX_TURN_S, extra={"call_id": self._context.call_id})
            self._end_utterance()
            vad.reset()
            return False
        return vad.speech_ms >= BARGE_IN_MIN_SPEECH_MS and self.agent_speaking

    def _end_utterance(self) -> None:
        if not self._utterance:
            return
        audio = np.concatenate(self._utterance)
        self._utterance = []
        self._utterance_samples = 0
        self._queue_turn(CallerTurn(audio=audio))

    def _queue_turn(self, turn: CallerTurn) -> None:
        turn.ended_at = anyio.current_time()
        try:
            self._turns_send.send_nowait(turn)
        except anyio.WouldBlock:
            log.warning("caller turns backed up; dropping one", extra={"call_id": self._context.call_id})

    @property
    def agent_speaking(self) -> bool:
        """Speaking = a generation is producing audio, or its audio is still queued at the carrier."""
        return not self._generation_done or self.ledger.pending(self._generation) > 0

    async def _barge_in(self) -> None:
        """Exactly one `clear`; the generation stops; history keeps only what was heard."""
        generation = self._generation
        assert self.record is not None
        self.record.barge_ins += 1
        if self._generation_scope is not None:
            self._generation_scope.cancel()  # _generate records the heard text when it unwinds
        else:
            self.conversation.cut_to_heard(generation, self.ledger.heard_text(generation))
        self._generation_done = True
        await self.playout.clear()

    # ---- turns --------------------------------------------------------------------------
    async def _turn_loop(self, turns: MemoryObjectReceiveStream[CallerTurn]) -> None:
        agent = self.runtime.agent
        greeting = render_template(agent.greeting, self._context, agent.variables)
        await self._generate(greeting_text=greeting)
        async with turns:
            async for turn in turns:
                text = turn.text
                trace = TurnTrace(generation=self._generation + 1)
                trace.stages["end_of_speech"] = turn.ended_at
                if text is None and turn.audio is not None:
                    text = (await self.runtime.providers.stt.transcribe(turn.audio, SAMPLE_RATE)).strip()
                    trace.stages["stt_done"] = anyio.current_time()
                if not text:
                    log.info("empty transcript; staying silent on purpose", extra={"call_id": self._context.call_id})
                    continue
                trace.user_text = text
                self.conversation.add_user(text)
                await self._generate(trace=trace)

    async def _generate(self, trace: TurnTrace | None = None, greeting_text: str | None = None) -> None:
        self._generation += 1
        generation = self._generation
        trace = trace or TurnTrace(generation=generation)
        trace.generation = generation
        trace.stages.setdefault("end_of_speech", anyio.current_time())
        self.playout.begin(generation)
        self._generation_done = False
        reply = ""
        with anyio.CancelScope() as scope:
            self._generation_scope = scope
            if greeting_text is not None:
                reply = greeting_text
                await self.responder.say(trace, greeting_text)
            else:
                reply = await self.responder.reply(trace, self.conversation.messages)
        self._generation_scope = None
        interrupted = scope.cancelled_caught
        if not interrupted:
            self._generation_done = True
            self.conversation.add_assistant(generation, reply)
        else:
            # The caller cut in while the model was still writing: keep only what was heard.
            self.conversation.add_assistant(generation, self.ledger.heard_text(generation))
        trace.reply_text = reply
        trace.interrupted = interrupted
        self._finish_trace(trace)

    def _finish_trace(self, trace: TurnTrace) -> None:
        t0 = trace.stages["end_of_speech"]
        trace.stages = {k: round((v - t0) * 1000.0, 1) for k, v in trace.stages.items()}
        assert self.record is not None
        self.record.turns.append(trace)
        log.info(
            "turn %s",
            json.dumps({"call_id": self._context.call_id, "generation": trace.generation, "stages_ms": trace.stages}),
        )
