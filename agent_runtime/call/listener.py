"""The caller's side of the per-frame loop: VAD, the utterance buffer, the barge-in gate.

Runs on every inbound payload, so it allocates little, never blocks and never logs per frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from agent_runtime.audio.vad import SpeechEnd, SpeechStart, VadOptions, VoiceActivityDetector
from agent_runtime.call.turns import BargeInGate, TurnOptions, rms_dbfs

SAMPLE_RATE = 8000
# Speech that goes on after the agent stopped (beyond an echo tail) makes an overlap a real turn.
REAL_TURN_AFTER_AGENT_MS = 300.0


class Heard(Enum):
    NOTHING = 0
    BARGE_IN = 1  # the caller is talking over the agent: clear and stop the reply now
    UTTERANCE = 2  # a caller turn ended: `take_utterance()` has it
    IGNORED = 3  # sound during agent speech that never became a barge-in (echo, backchannel)
    TOO_LONG = 4  # the turn hit max_turn_s


@dataclass(slots=True)
class ListenerStats:
    utterances: int = 0
    ignored: int = 0
    too_long: int = 0


class Listener:
    def __init__(self, vad_options: VadOptions, options: TurnOptions) -> None:
        self.vad = VoiceActivityDetector(SAMPLE_RATE, vad_options)
        self.options = options
        self.gate = BargeInGate(options)
        self.stats = ListenerStats()
        self._preroll: deque[np.ndarray] = deque()
        self._preroll_samples = 0
        self._preroll_max = options.preroll_ms * SAMPLE_RATE // 1000
        self._max_turn_samples = int(options.max_turn_s * SAMPLE_RATE)
        self._utterance: list[np.ndarray] = []
        self._samples = 0
        self._over_agent = False  # this utterance began while the agent was speaking
        self._barged = False  # … and it became a barge-in
        self._loud_after_agent_ms = 0.0  # energetic speech in it while the agent was quiet
        self._speech_started_ms = 0
        self._ready: np.ndarray | None = None
        # Of the utterance `take_utterance` returns: did it interrupt the agent, how long was the speech.
        self.ready_barged = False
        self.ready_speech_ms = 0.0

    def push(self, pcm: np.ndarray, agent_speaking: bool, echo_level_dbfs: float) -> Heard:
        heard = Heard.NOTHING
        for event in self.vad.push(pcm):
            if isinstance(event, SpeechStart):
                onset_ms = event.detected_ms - event.at_ms - pcm.size / 8.0
                self._speech_started_ms = event.at_ms
                self._start_utterance(agent_speaking, onset_ms, echo_level_dbfs)
            elif isinstance(event, SpeechEnd):
                heard = self._end_utterance(event.at_ms - self._speech_started_ms)
        if not self.vad.speaking:
            self._keep_preroll(pcm)
            if agent_speaking:
                self.gate.update(pcm, False, echo_level_dbfs)
            return heard
        self._utterance.append(pcm)
        self._samples += pcm.size
        if self._samples > self._max_turn_samples:
            self.stats.too_long += 1
            audio = self._drop_utterance()
            self.vad.reset()
            if self.options.max_turn_action == "end_turn" and not self._over_agent:
                self._set_ready(audio, self.options.max_turn_s * 1000.0)
            return Heard.TOO_LONG
        if agent_speaking and not self._barged:
            self._over_agent = True
            if self.gate.update(pcm, True, echo_level_dbfs):
                self._barged = True
                return Heard.BARGE_IN
        elif self._over_agent and not agent_speaking and rms_dbfs(pcm) >= self.options.barge_in_min_dbfs:
            self._loud_after_agent_ms += pcm.size / 8.0
        return heard

    def take_utterance(self) -> np.ndarray | None:
        audio, self._ready = self._ready, None
        return audio

    def _keep_preroll(self, pcm: np.ndarray) -> None:
        self._preroll.append(pcm)
        self._preroll_samples += pcm.size
        while self._preroll and self._preroll_samples - self._preroll[0].size >= self._preroll_max:
            self._preroll_samples -= self._preroll.popleft().size

    def _start_utterance(self, agent_speaking: bool, onset_ms: float, echo_level_dbfs: float) -> None:
        self.gate.reset()
        if agent_speaking:
            # Speech began before the VAD confirmed it: credit those frames, so the time to
            # `clear` counts from the real onset rather than from the confirmation.
            need = onset_ms * 8.0
            recent: list[np.ndarray] = []
            for frame in reversed(self._preroll):
                if need <= 0:
                    break
                recent.append(frame)
                need -= frame.size
            for frame in reversed(recent):
                self.gate.update(frame, True, echo_level_dbfs)
        self._utterance = list(self._preroll)
        self._samples = self._preroll_samples
        self._preroll.clear()
        self._preroll_samples = 0
        self._over_agent = agent_speaking
        self._barged = False
        self._loud_after_agent_ms = 0.0

    def _drop_utterance(self) -> np.ndarray | None:
        audio = np.concatenate(self._utterance) if self._utterance else None
        self._utterance = []
        self._samples = 0
        return audio

    def _set_ready(self, audio: np.ndarray | None, speech_ms: float) -> None:
        self._ready = audio
        self.ready_barged = self._barged
        self.ready_speech_ms = speech_ms

    def _end_utterance(self, speech_ms: float) -> Heard:
        audio = self._drop_utterance()
        if audio is None:
            return Heard.NOTHING
        if self._over_agent and not self._barged and self._loud_after_agent_ms < REAL_TURN_AFTER_AGENT_MS:
            # Echo or a backchannel ("uh-huh") while the agent talked: not a turn.
            self.stats.ignored += 1
            return Heard.IGNORED
        self.stats.utterances += 1
        self._set_ready(audio, speech_ms)
        return Heard.UTTERANCE
