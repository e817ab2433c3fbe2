"""The turn loop of one call: the greeting, then each caller turn in order.

A turn is transcribed and answered by a generation; a short backchannel that stopped the agent
gets the missed words said again (a false interruption); an idle turn (from the watchdog) asks
whether the caller is still there, and after `idle_max_prompts` ends the call politely.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream

from agent_runtime.agent.definition import render_template
from agent_runtime.call.listener import SAMPLE_RATE
from agent_runtime.runtime import TurnTrace

if TYPE_CHECKING:
    from agent_runtime.call.session import CallSession

log = logging.getLogger("agent_runtime.call")


@dataclass(slots=True)
class CallerTurn:
    audio: np.ndarray | None = None  # an utterance (int16, 8 kHz)
    text: str | None = None  # already text (DTMF)
    ended_at: float = 0.0
    barged: bool = False  # the utterance interrupted the agent
    speech_ms: float = 0.0  # from its first to its last voiced frame
    idle: bool = False  # not the caller's: the caller has been silent too long (TurnOptions.idle_reprompt_s)


class TurnLoop:
    def __init__(self, session: CallSession) -> None:
        self._session = session

    async def run(self, turns: MemoryObjectReceiveStream[CallerTurn]) -> None:
        s = self._session
        agent = s.runtime.agent
        greeting = render_template(agent.greeting, s.context, agent.variables)
        trace = TurnTrace(generation=0, stages={"end_of_speech": s.started_at or anyio.current_time()})
        await s.generate(trace, fixed_text=greeting, greeting=True)
        async with turns:
            async for turn in turns:
                s.turn_busy = True
                await self._answer(turn)
                s.turn_busy = False
                if s.hang_up_reason is not None or s.transfer.accepted is not None or s.ending:
                    return  # the call is ending (hang-up, transfer or goodbye): this loop's work is done

    async def _answer(self, turn: CallerTurn) -> None:
        """One turn: transcribe, then reply (or resume after a false interruption, or re-prompt)."""
        s = self._session
        trace = TurnTrace(generation=0)
        trace.stages["end_of_speech"] = turn.ended_at
        if turn.idle:
            await self._on_idle(trace)
            return
        text = turn.text
        if text is None and turn.audio is not None:
            text = await self._transcribe(turn.audio, trace)
        unheard, s.unheard = s.unheard, ""
        if text is None:
            return  # STT failed: the fallback line was spoken
        if turn.barged and unheard and s.options.is_backchannel(text, turn.speech_ms):
            log.info("false interruption (%r, %.0f ms of speech): saying the missed words again", text,
                     turn.speech_ms, extra={"call_id": s.context.call_id})
            await s.generate(trace, fixed_text=unheard)
            return
        if not text:
            log.info("empty transcript; staying silent on purpose", extra={"call_id": s.context.call_id})
            return
        trace.user_text = text
        s.conversation.add_user(text)
        await s.generate(trace)
        if s.hang_up_reason is not None:
            log.info("the agent ends the call (%s)", s.hang_up_reason, extra={"call_id": s.context.call_id})
            await s.hang_up("agent_hung_up")
        elif s.transfer.accepted is not None:
            await s.transfer.complete()  # the caller goes to people

    async def _on_idle(self, trace: TurnTrace) -> None:
        s = self._session
        agent = s.runtime.agent
        if s.idle_prompts > s.options.idle_max_prompts:
            log.info("caller silent after %d prompts; ending the call", s.idle_prompts - 1,
                     extra={"call_id": s.context.call_id})
            s.ending = True
            goodbye = render_template(agent.idle_goodbye_line, s.context, agent.variables)
            await s.generate(trace, fixed_text=goodbye)
            await s.hang_up("caller_idle")
            return
        log.info("caller silent for %.0f s; asking if they are still there", s.options.idle_reprompt_s,
                 extra={"call_id": s.context.call_id})
        await s.generate(trace, fixed_text=render_template(agent.idle_line, s.context, agent.variables))

    async def _transcribe(self, audio: np.ndarray, trace: TurnTrace) -> str | None:
        """The caller's words ("" when there were none); None when STT failed (the fallback was spoken)."""
        s = self._session
        try:
            with anyio.fail_after(s.options.stt_timeout_s):
                text = (await s.runtime.providers.stt.transcribe(audio, SAMPLE_RATE)).strip()
        except Exception as exc:  # includes the timeout: the caller hears the fallback, not silence
            log.warning("stt failed (%s); speaking the fallback line", type(exc).__name__, extra={"call_id": s.context.call_id})
            await s.speak_fallback(trace)
            await s.count_failure(True)
            return None
        trace.stages["stt_done"] = anyio.current_time()
        return text

