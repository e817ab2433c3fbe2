"""The agent's fixed lines, ready as 8 kHz μ-law: the greeting's fast path and a voice when TTS is down.

The greeting from the cache leaves within ms of `start`; the fallback and goodbye lines from
the cache are heard even when the TTS provider is failing (never silent). Cached per rendered
text (a line with per-call variables gets one entry per distinct text) in a small LRU. Filled
at start-up by `warm_lines` for lines without per-call variables, and otherwise by the first
call that speaks a line in full (a line cut by the caller or a TTS error is never cached).
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


class LineCache:
    """Rendered line text → its μ-law audio. Event loop only."""

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


def static_line(agent: Agent, template: str) -> str | None:
    """A line's text when it is the same on every call (agent variables only), else None."""
    fields = {name for _, name, _, _ in Formatter().parse(template) if name}
    if fields & PER_CALL_FIELDS or not fields <= set(agent.variables):
        return None
    return render_template(template, CallContext(call_id="", caller="", callee="", direction=""), agent.variables)


async def synthesize_ulaw(tts: TTS, text: str) -> bytes:
    """Text → 8 kHz μ-law, exactly as a call's playout would receive it."""
    resampler = StreamResampler(tts.sample_rate, SAMPLE_RATE)
    parts = [resampler.process(pcm) async for pcm in tts.synthesize(text)]
    parts.append(resampler.flush())
    return ulaw_encode(np.concatenate(parts)) if parts else b""


async def warm_lines(cache: LineCache, agent: Agent, tts: TTS) -> list[str]:
    """Caches the greeting, fallback and goodbye lines at start-up; returns the texts cached
    (a line that varies per call is cached by the first call that speaks it)."""
    warmed = []
    for template in (agent.greeting, agent.fallback_line, agent.goodbye_line):
        text = static_line(agent, template)
        if text is not None and cache.get(text) is None:
            cache.put(text, await synthesize_ulaw(tts, text))
            warmed.append(text)
    return warmed
