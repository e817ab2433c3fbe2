"""Turn-taking options and the barge-in decision.

Carrier audio has no echo cancellation: the agent's own voice comes back on the inbound track.
We know exactly what we played and when, so the gate learns, per call, how loud our echo comes
back relative to our playback (the echo return loss) and counts only caller audio clearly above
that. A caller talking over us is louder than our echo; a short burst (cough, "uh-huh") never
reaches the minimum.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np


# What callers say to show they are listening, not to take the turn (lower case, as STT writes them).
BACKCHANNEL_WORDS = frozenset({
    "uh-huh", "uh", "huh", "mhm", "mm", "mmm", "hmm", "mm-hmm", "um", "ah", "oh", "yeah", "yes", "yep",
    "ok", "okay", "right", "sure", "alright", "all", "got", "it", "i", "see", "cool", "fine", "good",
})


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """Every turn-taking knob, with its telephony default and why."""

    # Caller speech (energetic, above the echo gate) needed to interrupt the agent. 120 ms
    # keeps onset → `clear` under ~150 ms while a 40 ms cough (≈ 2 loud frames) never gets there.
    barge_in_min_speech_ms: int = 120
    # Frames quieter than this never count toward a barge-in (line noise, breathing).
    barge_in_min_dbfs: float = -45.0
    # Echo gate: caller audio must be this much louder than our echo is expected to be.
    echo_margin_db: float = 6.0
    # Echo return loss assumed before the call has measured its own (phone echo is ≥ ~10 dB down).
    initial_echo_return_db: float = -10.0
    # How far back playback counts as a possible echo source (network + carrier jitter buffer).
    echo_window_ms: int = 600
    # Audio kept from before speech was confirmed, so the first word reaches STT whole.
    preroll_ms: int = 300
    # A caller turn longer than this (hold music, an IVR prompt) trips `max_turn_action`.
    max_turn_s: float = 30.0
    max_turn_action: Literal["end_turn", "discard"] = "end_turn"
    # Never silent: a generation that sends no audio for this long is replaced by the fallback line.
    no_audio_timeout_s: float = 2.0
    # STT must answer within this, or the caller hears the fallback line.
    stt_timeout_s: float = 5.0
    # A DTMF key pressed while the agent talks interrupts it (as IVR callers expect).
    dtmf_interrupts: bool = True
    # Keys pressed less than this apart reach the model as one input ("1234#"), not one turn each;
    # `#` sends at once. Each key still reaches `on_dtmf` as it arrives.
    dtmf_gap_ms: int = 600
    # A false interruption: speech that stopped the agent but was at most this long and only a
    # backchannel ("uh-huh", "okay") or no words at all (a cough). The agent then says the words
    # the caller did not hear instead of starting a new turn, and the sound stays out of history.
    # 0 turns resuming off.
    backchannel_max_ms: int = 1000
    backchannel_words: frozenset[str] = BACKCHANNEL_WORDS
    # Idle caller: this long after the agent's last words played (marks back) with no sound or key
    # from the caller, the agent asks if they are still there (Agent.idle_line); after
    # `idle_max_prompts` unanswered prompts it says Agent.idle_goodbye_line and hangs up. 0: off.
    idle_reprompt_s: float = 10.0
    idle_max_prompts: int = 2

    def __post_init__(self) -> None:
        for option in fields(self):  # a wrong type gets the same clear message as a wrong value
            if option.type in ("int", "float"):
                value = getattr(self, option.name)
                _check(isinstance(value, int | float) and not isinstance(value, bool), option.name, f"a number ({option.type})", value)
        _check(20 <= self.barge_in_min_speech_ms <= 2000, "barge_in_min_speech_ms", "20..2000 ms", self.barge_in_min_speech_ms)
        _check(-90.0 <= self.barge_in_min_dbfs <= 0.0, "barge_in_min_dbfs", "-90..0 dBFS", self.barge_in_min_dbfs)
        _check(0.0 <= self.echo_margin_db <= 40.0, "echo_margin_db", "0..40 dB", self.echo_margin_db)
        _check(-60.0 <= self.initial_echo_return_db <= 0.0, "initial_echo_return_db", "-60..0 dB", self.initial_echo_return_db)
        _check(0 <= self.echo_window_ms <= 3000, "echo_window_ms", "0..3000 ms", self.echo_window_ms)
        _check(0 <= self.preroll_ms <= 1000, "preroll_ms", "0..1000 ms", self.preroll_ms)
        _check(1.0 <= self.max_turn_s <= 600.0, "max_turn_s", "1..600 s", self.max_turn_s)
        _check(self.max_turn_action in ("end_turn", "discard"), "max_turn_action", "'end_turn' or 'discard'", self.max_turn_action)
        _check(0.5 <= self.no_audio_timeout_s <= 30.0, "no_audio_timeout_s", "0.5..30 s", self.no_audio_timeout_s)
        _check(0.5 <= self.stt_timeout_s <= 60.0, "stt_timeout_s", "0.5..60 s", self.stt_timeout_s)
        _check(0 <= self.dtmf_gap_ms <= 5000, "dtmf_gap_ms", "0..5000 ms", self.dtmf_gap_ms)
        _check(0 <= self.backchannel_max_ms <= 3000, "backchannel_max_ms", "0..3000 ms", self.backchannel_max_ms)
        _check(self.idle_reprompt_s == 0 or 3.0 <= self.idle_reprompt_s <= 600.0, "idle_reprompt_s", "0 (off) or 3..600 s",
               self.idle_reprompt_s)
        _check(0 <= self.idle_max_prompts <= 10, "idle_max_prompts", "0..10", self.idle_max_prompts)

    def is_backchannel(self, text: str, speech_ms: float) -> bool:
        """True when an interrupting utterance was only a listener's noise (see backchannel_max_ms)."""
        if speech_ms > self.backchannel_max_ms:
            return False
        words = [w.strip(".,!?;:").lower() for w in text.split()]
        return all(w in self.backchannel_words for w in words if w)


def _check(ok: bool, name: str, allowed: str, value: object) -> None:
    if not ok:
        raise ValueError(f"turn option {name} must be {allowed}, got {value!r}")


def rms_dbfs(pcm: np.ndarray) -> float:
    """Level of int16 audio in dBFS (a full-scale square wave is 0)."""
    if pcm.size == 0:
        return -math.inf
    x = pcm.astype(np.float32)
    power = float(np.dot(x, x)) / pcm.size
    return 10.0 * math.log10(power / (32768.0 * 32768.0)) if power > 0 else -math.inf


class EchoReference:
    """Levels of our own playback over time: (start, end, dBFS) of each chunk as the carrier plays it."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._chunks: deque[tuple[float, float, float]] = deque()

    def played(self, start: float, end: float, level_dbfs: float) -> None:
        self._chunks.append((start, end, level_dbfs))

    def cut(self, at: float) -> None:
        """After a `clear`: chunks not yet started will never play."""
        while self._chunks and self._chunks[-1][0] > at:
            self._chunks.pop()

    def level(self, now: float) -> float:
        """Loudest playback that could be echoing back at `now`; -inf when none."""
        horizon = now - self._window_s
        chunks = self._chunks
        while chunks and chunks[0][1] < horizon:
            chunks.popleft()
        loudest = -math.inf
        for start, _end, level in chunks:
            if start > now:
                break
            if level > loudest:
                loudest = level
        return loudest


class BargeInGate:
    """Counts caller speech that is loud enough and not our echo; fires at the minimum.

    Fed every inbound payload while the agent speaks. It tracks the loudest echo return seen
    (inbound level minus our recent playback level): it climbs toward any frame that is not
    clearly caller speech, at a bounded rate so a caller's rising first syllable cannot drag it
    along, and decays slowly (seconds) on a quiet line, so an echo-free line soon lets a quiet
    caller in while a loud echo syllable stays below the gate.
    """

    DECAY = 0.005  # per 20 ms: about 1 s to close a fifth of the gap
    RISE_DB = 0.5  # per 20 ms at most: 3 dB over a 120 ms onset
    FLOOR_DB = -40.0  # below this, echo is inaudible anyway

    def __init__(self, options: TurnOptions) -> None:
        self._options = options
        self.speech_ms = 0.0
        self.echo_return_db = options.initial_echo_return_db

    def reset(self) -> None:
        self.speech_ms = 0.0

    def update(self, pcm: np.ndarray, voiced: bool, echo_level_dbfs: float) -> bool:
        """One inbound payload while the agent speaks; True once the caller really interrupts."""
        options = self._options
        duration_ms = pcm.size / 8.0
        level = rms_dbfs(pcm)
        playing = echo_level_dbfs > -60.0
        excess = max(level - echo_level_dbfs, self.FLOOR_DB) if playing else None
        loud = level >= options.barge_in_min_dbfs
        if voiced and loud and (excess is None or excess >= self.echo_return_db + options.echo_margin_db):
            self.speech_ms += duration_ms
            return self.speech_ms >= options.barge_in_min_speech_ms
        if excess is not None:
            estimate = self.echo_return_db
            frames = duration_ms / 20.0
            if excess > estimate:
                self.echo_return_db = min(excess, estimate + self.RISE_DB * frames)
            else:
                self.echo_return_db = estimate + self.DECAY * frames * (excess - estimate)
        # A dip between syllables loses credit gradually; a lone burst decays to nothing.
        self.speech_ms = max(0.0, self.speech_ms - duration_ms)
        return False
