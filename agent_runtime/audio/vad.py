"""Voice activity detection: webrtcvad + re-framing + a hysteresis state machine.

Carrier payloads arrive in arbitrary sizes (S04: 100, 260, 160, 333, 7 bytes),
but webrtcvad only accepts exact 10/20/30 ms frames and raises on anything
else. The detector re-frames internally, so callers push whatever they got.
Times are media time (counted from samples pushed), never wall-clock, so they
are exact and reproducible regardless of network jitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import webrtcvad

__all__ = [
    "VadOptions",
    "SpeechStart",
    "SpeechEnd",
    "VadEvent",
    "VoiceActivityDetector",
    "frame_rms_dbfs",
    "VAD_SAMPLE_RATES",
]

VAD_SAMPLE_RATES: frozenset[int] = frozenset({8000, 16000, 32000, 48000})
_FRAME_MS = (10, 20, 30)


@dataclass(frozen=True, slots=True)
class VadOptions:
    """Tuning for `VoiceActivityDetector`. Defaults are the telephony preset."""

    # webrtcvad aggressiveness: 2 rejects most PSTN line noise without clipping
    # soft onsets the way 3 does.
    mode: int = 2
    # 20 ms matches the Twilio frame, so one inbound frame is one VAD decision.
    frame_ms: int = 20
    # 60 ms (3 voiced frames) of speech before declaring a start: long enough to
    # ignore clicks and single noisy frames, short enough for snappy barge-in.
    start_ms: int = 60
    # 800 ms of silence ends the turn: people pause ~600 ms mid-sentence on the
    # phone ("my name is John ... Doe", S08) and that must not end the turn.
    hangover_ms: int = 800
    # Energy gate: frames quieter than this (dBFS, see frame_rms_dbfs) are
    # non-speech. webrtcvad's own hangover keeps ~100-200 ms of quiet tail
    # "voiced", which would silently add to hangover_ms; -50 dBFS is well above a
    # phone line's noise floor (~-60) and below soft speech (~-40). The telephony
    # preset sets -50; None (the bare default) disables it.
    min_rms_dbfs: float | None = None
    # A fresh webrtcvad.Vad calls the first ~80-120 ms "speech" on ANY non-zero
    # input (even -70 dBFS noise; measured, all modes), which would fake a
    # SpeechStart at call connect. Frames in this window still train webrtcvad
    # but count as non-speech; speech already under way starts at warmup_ms.
    warmup_ms: int = 120

    def __post_init__(self) -> None:
        if not isinstance(self.mode, int) or not 0 <= self.mode <= 3:
            raise ValueError(f"VadOptions.mode must be an int in 0..3, got {self.mode!r}")
        if self.frame_ms not in _FRAME_MS:
            raise ValueError(f"VadOptions.frame_ms must be one of 10, 20, 30, got {self.frame_ms!r}")
        # Upper bounds catch unit mistakes (seconds typed as ms) that would leave callers unheard.
        for name, most in (("start_ms", 1000), ("hangover_ms", 5000), ("warmup_ms", 2000)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
                raise ValueError(f"VadOptions.{name} must be an int in 0..{most} ms, got {value!r}")
        if self.min_rms_dbfs is not None and not -120.0 <= self.min_rms_dbfs <= 0.0:
            raise ValueError(
                f"VadOptions.min_rms_dbfs must be None or in -120.0..0.0 dBFS, got {self.min_rms_dbfs!r}"
            )

    @classmethod
    def telephony(cls) -> VadOptions:
        """Mode 2, 20 ms frames, 60 ms to start, 800 ms hangover, 120 ms warm-up,
        -50 dBFS energy gate (see the field comments for why)."""
        return cls(min_rms_dbfs=-50.0)


@dataclass(frozen=True, slots=True)
class SpeechStart:
    at_ms: int  # media time of the first voiced frame of the run (when speech began)
    detected_ms: int  # media time at which the start was confirmed (at_ms + start_ms)


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    at_ms: int  # media time just after the last voiced frame (when speech ended)
    detected_ms: int  # media time at which the end was confirmed (at_ms + hangover_ms)


VadEvent = SpeechStart | SpeechEnd

_NO_EVENTS: tuple[VadEvent, ...] = ()


def frame_rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level in dBFS re a full-scale square wave (a full-scale sine reads -3.01).

    Returns -inf for empty or all-zero input.
    """
    if pcm.size == 0:
        return -math.inf
    x = pcm.astype(np.float64)
    ms = float(np.dot(x, x)) / pcm.size
    return 10.0 * math.log10(ms / (32768.0 * 32768.0)) if ms > 0.0 else -math.inf


class VoiceActivityDetector:
    """One per call/stream (webrtcvad keeps adaptive state; not thread-safe).

    `vad` is the underlying `webrtcvad.Vad`; it is looked up on every frame so
    tests may wrap `vad.is_speech`.
    """

    def __init__(self, sample_rate: int = 8000, options: VadOptions | None = None) -> None:
        if sample_rate not in VAD_SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of 8000, 16000, 32000, 48000, got {sample_rate!r}")
        self.sample_rate = sample_rate
        self.options = options if options is not None else VadOptions.telephony()
        opts = self.options
        self._frame_len = sample_rate * opts.frame_ms // 1000
        self._frame_bytes = self._frame_len * 2
        self._start_frames = max(1, -(-opts.start_ms // opts.frame_ms))  # ceil
        self._hang_frames = max(1, -(-opts.hangover_ms // opts.frame_ms))
        self._warmup = sample_rate * opts.warmup_ms // 1000  # in samples
        # Partial-frame carry between pushes: preallocated, plus a byte view for webrtcvad.
        self._rem = np.zeros(self._frame_len, dtype=np.int16)
        self._rem_bytes = self._rem.view(np.uint8)
        self.vad = webrtcvad.Vad(opts.mode)
        self._init_state()

    def _init_state(self) -> None:
        self._fill = 0  # samples in _rem
        self._clock = 0  # media time in samples at the start of the next frame
        self._speaking = False
        self._run = 0  # consecutive voiced frames (candidate start) / unvoiced frames (hangover)
        self._run_start = 0  # sample time where the current run began
        self._last_voiced_end = 0  # sample time just after the last voiced frame
        self._speech_start = 0  # sample time of the current utterance's first voiced frame

    # -- public state -------------------------------------------------------
    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def speech_ms(self) -> int:
        """While speaking: ms from speech start to the end of the last voiced frame
        (does not grow during trailing silence). Otherwise: the pending voiced run."""
        if self._speaking:
            return (self._last_voiced_end - self._speech_start) * 1000 // self.sample_rate
        return self._run * self.options.frame_ms

    @property
    def media_ms(self) -> int:
        """Media time processed so far (whole frames), in ms."""
        return self._clock * 1000 // self.sample_rate

    def reset(self) -> None:
        """Forget speech state, the partial frame and webrtcvad's adaptation.

        The media clock restarts at 0 (a fresh detector); the `vad` attribute is
        replaced, so re-wrap it if you spy on it.
        """
        self.vad = webrtcvad.Vad(self.options.mode)
        self._init_state()

    # -- processing ---------------------------------------------------------
    def push(self, pcm: np.ndarray) -> tuple[VadEvent, ...]:
        """Feed any number of int16 samples; returns the events they completed."""
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 PCM, got dtype {pcm.dtype}")
        n = pcm.shape[0]
        if n == 0:
            return _NO_EVENTS
        if not pcm.flags.c_contiguous:
            pcm = np.ascontiguousarray(pcm)
        events: list[VadEvent] | None = None
        flen = self._frame_len
        pos = 0
        if self._fill:
            take = min(flen - self._fill, n)
            self._rem[self._fill : self._fill + take] = pcm[:take]
            self._fill += take
            pos = take
            if self._fill < flen:
                return _NO_EVENTS
            self._fill = 0
            events = self._frame(self._rem, self._rem_bytes, events)
        if n - pos >= flen:
            raw = pcm.view(np.uint8)  # byte view once per push; webrtcvad wants bytes
            fb = self._frame_bytes
            while n - pos >= flen:
                events = self._frame(pcm[pos : pos + flen], raw[pos * 2 : pos * 2 + fb], events)
                pos += flen
        tail = n - pos
        if tail:
            self._rem[:tail] = pcm[pos:]
            self._fill = tail
        return _NO_EVENTS if events is None else tuple(events)

    def _frame(
        self, frame: np.ndarray, frame_bytes: np.ndarray, events: list[VadEvent] | None
    ) -> list[VadEvent] | None:
        start = self._clock
        end = start + self._frame_len
        self._clock = end
        gate = self.options.min_rms_dbfs
        # webrtcvad sees every frame (it adapts to the line's noise); the gate only vetoes.
        voiced = self.vad.is_speech(frame_bytes, self.sample_rate, self._frame_len) and (
            gate is None or frame_rms_dbfs(frame) >= gate
        )
        if start < self._warmup:
            voiced = False  # webrtcvad is still adapting (see VadOptions.warmup_ms)
        if not self._speaking:
            if not voiced:
                self._run = 0
                return events
            if self._run == 0:
                self._run_start = start
            self._run += 1
            self._last_voiced_end = end
            if self._run >= self._start_frames:
                self._speaking = True
                self._speech_start = self._run_start
                self._run = 0
                ev: VadEvent = SpeechStart(self._ms(self._run_start), self._ms(end))
            else:
                return events
        else:
            if voiced:
                self._run = 0
                self._last_voiced_end = end
                return events
            self._run += 1
            if self._run < self._hang_frames:
                return events
            self._speaking = False
            self._run = 0
            ev = SpeechEnd(self._ms(self._last_voiced_end), self._ms(end))
        if events is None:
            events = []
        events.append(ev)
        return events

    def _ms(self, samples: int) -> int:
        return samples * 1000 // self.sample_rate
