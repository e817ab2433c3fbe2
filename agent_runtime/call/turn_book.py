"""When a turn's trace is complete: after its generation ended *and* its first mark came back.

Stage times are event-loop seconds while a turn runs. The last stage, `first_mark` (the
carrier's word that our first chunk played), often arrives after the generation has finished
sending, so a finished trace waits for it, until the next generation begins or the call ends.
Then the trace is turned into ms since its end of speech and published once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from agent_runtime.runtime import TurnTrace

Publish = Callable[[TurnTrace, float], None]  # (trace with stages in ms, epoch seconds of its end of speech)


class TurnBook:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._open: TurnTrace | None = None  # the current generation's trace
        self._finished = False

    def begin(self, trace: TurnTrace) -> None:
        self._flush()
        self._open, self._finished = trace, False

    def heard(self, generation: int) -> None:
        """A mark of `generation` came back as played (called per mark echo: keep it cheap)."""
        trace = self._open
        if trace is None or trace.generation != generation or "first_mark" in trace.stages:
            return
        trace.stages["first_mark"] = anyio.current_time()
        if self._finished:
            self._flush()

    def finished(self, trace: TurnTrace) -> None:
        if trace is not self._open:
            self._emit(trace)
            return
        self._finished = True
        stages = trace.stages
        if "first_mark" in stages or "first_frame_sent" not in stages or trace.interrupted:
            self._flush()  # nothing more to wait for

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        trace, self._open = self._open, None
        if trace is not None:
            self._emit(trace)

    def _emit(self, trace: TurnTrace) -> None:
        t0 = trace.stages["end_of_speech"]
        epoch_t0 = time.time() - (anyio.current_time() - t0)
        ordered = sorted(trace.stages.items(), key=lambda item: item[1])  # in the order they happened
        trace.stages = {k: round((v - t0) * 1000.0, 1) for k, v in ordered}
        self._publish(trace, epoch_t0)
