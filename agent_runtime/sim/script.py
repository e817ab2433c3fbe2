"""What the simulated caller does, and what the simulator observed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent_runtime.audio.g711 import ulaw_decode


@dataclass(slots=True)
class Utterance:
    """One thing the caller says (int16, 8 kHz).

    By default the caller waits until the agent has been quiet for `gap_s`. With
    `barge_in_after_s` the caller instead talks over the agent that long after the agent's
    current reply started playing; with `after_previous_s`, that long after the previous
    utterance ended. `level_dbfs` rescales the speech to that RMS level.
    """

    audio: np.ndarray
    gap_s: float = 0.6
    barge_in_after_s: float | None = None
    level_dbfs: float | None = None
    after_previous_s: float | None = None  # start this long after the previous utterance, whatever the agent does


@dataclass(slots=True)
class CallScript:
    utterances: list[Utterance]
    hangup_after_s: float = 1.0  # after the agent's last reply has played out
    max_duration_s: float = 60.0
    reply_timeout_s: float = 20.0  # give up waiting for the agent after this long
    echo_delay_ms: int | None = None  # the agent's played audio returns on the inbound track …
    echo_gain_db: float = -12.0  # … this much quieter
    noise_dbfs: float | None = None  # white line noise under everything
    dtmf: list[tuple[float, str]] = field(default_factory=list)  # (media seconds, digit)
    raw_frames: list[tuple[float, str | bytes]] = field(default_factory=list)  # (media seconds, frame sent as is)
    drop_after_s: float | None = None  # the TCP connection dies then: no stop, no close frame
    stop_after_s: float | None = None  # the caller hangs up then (`stop` and a normal close), whatever is playing
    extensions: tuple[str, ...] = ("stop_reason",)  # Rozper extensions announced on `start`
    media_format: tuple[str, int, int] = ("audio/x-mulaw", 8000, 1)  # start.mediaFormat: encoding, rate, channels
    transfer_answer: str = "accepted"  # how the carrier answers a `transfer` message
    record: bool = False  # `data.record` on the call-connect request: ask the agent to record the call
    caller: str = "+15551230001"
    callee: str = "+15559870002"
    seed: int = 7


@dataclass(slots=True)
class CallResult:
    call_id: str
    started_at: float = 0.0  # event-loop time of the first media frame
    caller_leg: bytearray = field(default_factory=bytearray)  # μ-law, one frame per tick
    agent_leg: bytearray = field(default_factory=bytearray)  # as played by the carrier
    greeting_latency_ms: float | None = None
    turn_latencies_ms: list[float] = field(default_factory=list)  # last speech frame → next agent audio
    speech_onset_ticks: list[int] = field(default_factory=list)  # per utterance, its first voiced frame
    timeline: list[tuple[int, str, str]] = field(default_factory=list)  # (tick, media|mark|clear, detail)
    dtmf_sent: list[tuple[float, str]] = field(default_factory=list)  # (event-loop time, digit)
    media_messages: int = 0
    media_bytes: int = 0
    media_arrivals: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    marks_sent: int = 0  # marks the agent sent
    marks_echoed: int = 0
    clears: int = 0
    frames_sent: int = 0
    close_code: int | None = None
    hung_up: bool = False
    unexpected_messages: list[str] = field(default_factory=list)
    transfers: list[dict] = field(default_factory=list)  # `transfer` messages the agent sent
    transfer_times: list[float] = field(default_factory=list)  # event-loop time each arrived
    hangups: list[dict] = field(default_factory=list)  # `hangup` messages the agent sent
    stop_reason: str | None = None  # the reason on the `stop` we sent
    stop_sent_at: float | None = None  # wall-clock time (time.time) the `stop` went out
    after_stream: dict | None = None  # the document the `action` URL answered when the agent closed

    def clear_ticks(self) -> list[int]:
        return [tick for tick, kind, _ in self.timeline if kind == "clear"]

    def stereo(self) -> np.ndarray:
        """Both legs as (samples, 2) int16: left the caller, right the agent as played."""
        n = min(len(self.caller_leg), len(self.agent_leg))
        return np.stack([ulaw_decode(bytes(self.caller_leg[:n])), ulaw_decode(bytes(self.agent_leg[:n]))], axis=1)
