"""Call recording: both legs into one stereo WAV (left the caller, right the agent).

Asked for per call: Rozper's call-connect `data.record: true` (protocols.md §7.1) is carried
to the media stream as the connect_stream parameter `record=true`, so it comes back in
`start.customParameters` (§7.3) on the signed, token-checked stream; a Twilio deployment can
send the same `<Parameter name="record" value="true"/>`.

Alignment: both legs sit on the inbound media clock. The caller's frames go where their
`timestamp` says (a gap stays silent). An agent chunk goes where its mark came back: the
carrier echoes a mark when that chunk has finished playing, on the same socket and in order
with the inbound frames, so "inbound samples received when the mark arrived" is where the
chunk ended for the caller, whatever the network delay. This records what was heard: audio
flushed by a `clear` never plays and is left out (the one chunk playing at the `clear` too,
at most one chunk, 100 ms). Playout's own send-time estimate would include the flushed audio.

Bounded: each leg holds at most `max_s` seconds (default 30 min; later audio is dropped and
the file is marked truncated), as μ-law in fixed 10 s blocks, so appending a frame is one
copy of the frame into its block. The WAV is written in a worker thread at call end.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import numpy as np
import soundfile as sf

from agent_runtime.audio.g711 import ulaw_decode

if TYPE_CHECKING:
    from agent_runtime.runtime import Runtime

log = logging.getLogger("agent_runtime.call")

SAMPLE_RATE = 8000
DEFAULT_MAX_S = 1800.0
BLOCK = 10 * SAMPLE_RATE  # μ-law bytes (= samples) per block
_SILENCE_BLOCK = b"\xff" * BLOCK  # μ-law silence
RECORDING_READY = "agent.recording_ready"  # §7.4 recording.ready data fields; agent.* like the runtime's other events, so a receiver tells it from Rozper's own
MAX_IN_FLIGHT = 600  # agent chunks awaiting their mark (~60 s at 100 ms); a carrier that never echoes cannot grow it


def wants_recording(custom_parameters: dict[str, str]) -> bool:
    return custom_parameters.get("record", "").strip().lower() in ("true", "1", "yes")


def recorder_for(
    custom_parameters: dict[str, str], encode_media: Callable[[bytes], str], encode_mark: Callable[[str], str]
) -> tuple[CallRecorder | None, Callable[[bytes], str], Callable[[str], str]]:
    """A recorder and Playout's encoders wrapped for it when the call asked to be recorded; else the encoders as they are."""
    if not wants_recording(custom_parameters):
        return None, encode_media, encode_mark
    recorder = CallRecorder()
    return (recorder, *recorder.wrap_encoders(encode_media, encode_mark))


class LegBuffer:
    """One leg's μ-law audio at sample offsets, in preallocated blocks; bounded."""

    def __init__(self, max_samples: int) -> None:
        self._blocks: list[bytearray] = []
        self._max = max_samples
        self.length = 0  # samples, up to the end of the furthest write
        self.truncated = False

    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end > self._max:
            self.truncated = True
            if offset >= self._max:
                return
            data, end = data[: self._max - offset], self._max
        blocks = self._blocks
        while len(blocks) * BLOCK < end:
            blocks.append(bytearray(_SILENCE_BLOCK))
        index, at = divmod(offset, BLOCK)
        if at + len(data) <= BLOCK:  # the usual case: the frame fits its block
            blocks[index][at : at + len(data)] = data
        else:
            view, done = memoryview(data), 0
            while done < len(data):
                n = min(BLOCK - at, len(data) - done)
                blocks[index][at : at + n] = view[done : done + n]
                done += n
                index, at = index + 1, 0
        if end > self.length:
            self.length = end

    def block_pcm(self, index: int, samples: int) -> np.ndarray:
        """int16 audio of the first `samples` of block `index` (silence past this leg's end)."""
        if index >= len(self._blocks):
            return np.zeros(samples, np.int16)
        return ulaw_decode(memoryview(self._blocks[index])[:samples])


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    duration_s: float
    truncated: bool


class CallRecorder:
    """Collects both legs of one call; event loop only (the WAV is written by `save` in a thread)."""

    def __init__(self, max_s: float = DEFAULT_MAX_S) -> None:
        max_samples = int(max_s * SAMPLE_RATE)
        self.caller = LegBuffer(max_samples)
        self.agent = LegBuffer(max_samples)
        self._inbound_end = 0  # sample after the last inbound frame
        self._agent_end = 0
        self._in_flight: deque[tuple[str, bytes]] = deque(maxlen=MAX_IN_FLIGHT)
        self._payload = b""

    # ---- per inbound frame (hot path: one comparison, one copy of the frame) -------------
    def inbound(self, payload: bytes, timestamp_ms: int) -> None:
        # The media clock places the frame; a clock that stalls or runs back falls back to arrival order.
        offset = timestamp_ms * 8
        if offset < self._inbound_end:
            offset = self._inbound_end
        self.caller.write(offset, payload)
        self._inbound_end = offset + len(payload)

    # ---- outbound: pair each payload with its mark, place it when the mark comes back ------
    def wrap_encoders(
        self, encode_media: Callable[[bytes], str], encode_mark: Callable[[str], str]
    ) -> tuple[Callable[[bytes], str], Callable[[str], str]]:
        """Encoders for Playout that also note each chunk (playout sends media, then its mark)."""

        def media(payload: bytes) -> str:
            self._payload = payload
            return encode_media(payload)

        def mark(name: str) -> str:
            self._in_flight.append((name, self._payload))
            self._payload = b""
            return encode_mark(name)

        return media, mark

    def mark(self, name: str, heard: bool) -> None:
        """A mark echo: the chunk before it finished playing now (or was flushed, if not heard)."""
        in_flight = self._in_flight
        while in_flight:
            sent, payload = in_flight.popleft()
            if sent == name:
                if heard and payload:
                    start = max(self._inbound_end - len(payload), self._agent_end)
                    self.agent.write(start, payload)
                    self._agent_end = start + len(payload)
                return

    # ---- at call end ---------------------------------------------------------------------
    async def save(self, directory: Path, call_id: str) -> Recording:
        path = directory / f"{_safe_name(call_id)}.wav"
        return await anyio.to_thread.run_sync(self._write, path)

    def _write(self, path: Path) -> Recording:
        length = max(self.caller.length, self.agent.length)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Block by block: a long call never needs its whole int16 audio in memory at once.
        with sf.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=2, subtype="PCM_16", format="WAV") as out:
            for index, start in enumerate(range(0, length, BLOCK)):
                samples = min(BLOCK, length - start)
                out.write(np.stack([self.caller.block_pcm(index, samples), self.agent.block_pcm(index, samples)], axis=1))
        return Recording(path, length / SAMPLE_RATE, self.caller.truncated or self.agent.truncated)


def _safe_name(call_id: str) -> str:
    """The call id comes from the carrier: never let it choose a path outside the folder."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", call_id).lstrip(".")
    return name[:128] or "call_" + secrets.token_hex(6)


def recording_event(call_id: str, recording: Recording) -> dict[str, object]:
    """`recording.ready` data (protocols.md §7.4), plus the local path."""
    return {
        "call_id": call_id,
        "recording_id": "rec_" + secrets.token_hex(8),
        "url": recording.path.resolve().as_uri(),
        "path": str(recording.path),
        "duration_s": round(recording.duration_s, 2),
        "format": "wav",
        "channels": {"left": "caller", "right": "agent"},
        "truncated": recording.truncated,
    }


async def finish_recording(recorder: CallRecorder, runtime: "Runtime", call_id: str) -> None:
    """At call end: writes the WAV off the event loop, then emits `recording.ready`."""
    metrics = runtime.observer.metrics
    try:
        recording = await recorder.save(Path(runtime.config.data_dir) / "recordings", call_id)
    except Exception:
        metrics.recordings.labels("failed").inc()
        log.exception("recording could not be written", extra={"call_id": call_id})
        return
    metrics.recordings.labels("written").inc()
    data = recording_event(call_id, recording)
    record = next((r for r in reversed(runtime.finished_calls) if r.call_id == call_id), None)
    if record is not None:
        record.recording_url = str(data["url"])
    try:
        await runtime.emit(RECORDING_READY, data)
    except Exception:
        log.exception("recording.ready could not be emitted", extra={"call_id": call_id})
