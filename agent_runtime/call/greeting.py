"""The greeting fast path: the greeting's audio, ready as 8 kHz μ-law, so `start` → first frame is ~ms.

Cached per rendered text (a greeting with per-call variables gets one entry per distinct text),
in a small LRU. Filled at start-up by `warm_greeting` when the greeting has no per-call
variables, and otherwise by the first call that speaks it in full (a greeting cut by the
caller or a TTS error is never cached).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from string import Formatter

import numpy as np

from agent_runtime.agent.definition import Agent, CallContext, render_template
from agent_runtime.audio.g711 import ulaw_encode
from agent_runtime.audio.resample import StreamResampler
from agent_runtime.providers.base import TTS

log = logging.getLogger("agent_runtime.call")

SAMPLE_RATE = 8000
MAX_ENTRIES = 16
MAX_SECONDS = 30.0  # a longer "greeting" is not worth holding in memory
PER_CALL_FIELDS = frozenset({"caller", "callee", "call_id", "time", "date"})


class GreetingCache:
    """Rendered greeting text → its μ-law audio. Event loop only."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._max = max_entries

    def get(self, text: str) -> bytes | None:
        audio = self._entries.get(text)
        if audio is not None:
            self._entries.move_to_end(text)
        return audio

    def put(self, text: str, ulaw: bytes) -> None:
        if not ulaw or len(ulaw) > MAX_SECONDS * SAMPLE_RATE:
            return
        self._entries[text] = ulaw
        self._entries.move_to_end(text)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def static_greeting(agent: Agent) -> str | None:
    """The greeting's text when it is the same on every call (agent variables only), else None."""
    fields = {name for _, name, _, _ in Formatter().parse(agent.greeting) if name}
    if fields & PER_CALL_FIELDS or not fields <= set(agent.variables):
        return None
    return render_template(agent.greeting, CallContext(call_id="", caller="", callee="", direction=""), agent.variables)


async def synthesize_ulaw(tts: TTS, text: str) -> bytes:
    """Text → 8 kHz μ-law, exactly as a call's playout would receive it."""
    resampler = StreamResampler(tts.sample_rate, SAMPLE_RATE)
    parts = [resampler.process(pcm) async for pcm in tts.synthesize(text)]
    parts.append(resampler.flush())
    return ulaw_encode(np.concatenate(parts)) if parts else b""


async def warm_greeting(cache: GreetingCache, agent: Agent, tts: TTS) -> bool:
    """Fills the cache with the agent's greeting at start-up; False when it varies per call."""
    text = static_greeting(agent)
    if text is None:
        return False
    cache.put(text, await synthesize_ulaw(tts, text))
    return True
