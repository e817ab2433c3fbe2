"""Never silent, by a per-call check every 250 ms.

Two silences are caught: a generation that should be speaking but has sent no audio for
`no_audio_timeout_s` (a stalled LLM or TTS: it is cancelled and the fallback line is spoken),
and an idle caller (nothing said or keyed for `idle_reprompt_s` after the agent's words played:
the turn loop is handed an idle turn, which asks "are you still there?").
A running tool is left to its own timeout and filler line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from agent_runtime.call.session import CallSession

PERIOD_S = 0.25


class Watchdog:
    def __init__(self, session: CallSession) -> None:
        self._session = session

    async def run(self) -> None:
        session = self._session
        while True:
            await anyio.sleep(PERIOD_S)
            now = anyio.current_time()
            if self._caller_idle(now):
                session.queue_idle_turn()
            if self._stalled(now):
                session.stall()

    def _stalled(self, now: float) -> bool:
        s = self._session
        if s.generation_done or s.generation_scope is None or s.stalled or s.outcome.tools_running:
            return False
        last_audio = max(s.playout.last_audio_sent_at, s.generation_started)
        return now - last_audio > s.options.no_audio_timeout_s and s.playout.queued_s() == 0.0

    def _caller_idle(self, now: float) -> bool:
        """The caller has said and keyed nothing for idle_reprompt_s since the agent's words played."""
        s = self._session
        after = s.options.idle_reprompt_s
        if not after or s.turn_busy or s.ending or s.agent_speaking or s.listener.vad.speaking:
            return False
        if s.turns_waiting or s.transfer.accepted is not None:
            return False
        return now - max(s.playout.play_end, s.last_caller_active_at, s.started_at) >= after
