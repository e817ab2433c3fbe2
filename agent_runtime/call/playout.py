"""Paced playout: μ-law chunks out to the carrier, a named mark after each, at most ~1 s ahead.

Pacing keeps a `clear` cheap and the ledger exact: the carrier never holds more than
`max_lead_s` of our audio, so an interruption throws little away and "heard" is precise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import numpy as np

from agent_runtime.audio.g711 import ulaw_decode, ulaw_encode
from agent_runtime.call.ledger import PlayoutLedger
from agent_runtime.call.turns import EchoReference, rms_dbfs

SAMPLE_RATE = 8000
SendText = Callable[[str], Awaitable[None]]


class Playout:
    """Owns the outbound audio of one call. Audio in is int16 at 8 kHz."""

    def __init__(
        self,
        send: SendText,
        encode_media: Callable[[bytes], str],
        encode_mark: Callable[[str], str],
        encode_clear: Callable[[], str],
        ledger: PlayoutLedger,
        echo: EchoReference | None = None,
        chunk_ms: int = 100,
        max_lead_s: float = 1.0,
    ) -> None:
        if chunk_ms % 20 or not 20 <= chunk_ms <= 1000:
            raise ValueError(f"chunk_ms must be a multiple of 20 between 20 and 1000, got {chunk_ms}")
        self._send = send
        self._encode_media = encode_media
        self._encode_mark = encode_mark
        self._encode_clear = encode_clear
        self.ledger = ledger
        self._echo = echo
        self._chunk_bytes = chunk_ms * SAMPLE_RATE // 1000
        self._max_lead_s = max_lead_s
        self._pending = bytearray()  # μ-law not yet sent (less than one chunk)
        self._queued = 0  # bytes of this generation queued so far
        self._sent = 0  # bytes of this generation sent so far
        self._generation = -1
        self._index = 0
        self._play_end = 0.0  # estimated wall time when the carrier finishes what we sent
        self.first_frame_sent_at: float | None = None  # of the current generation
        self.bytes_sent = 0
        self.clears_sent = 0
        self.last_audio_sent_at = 0.0

    def begin(self, generation: int) -> None:
        """Starts a new generation: chunk numbering, byte offsets and first-frame time restart."""
        self._pending.clear()
        self._generation = generation
        self._index = 0
        self._queued = 0
        self._sent = 0
        self.first_frame_sent_at = None

    def begin_text(self, text: str) -> None:
        """The audio queued from now on speaks `text` (until `end_text`)."""
        self.ledger.text_begins(self._generation, text, self._queued)

    def end_text(self) -> None:
        self.ledger.text_ends(self._generation, self._queued)

    async def play(self, pcm: np.ndarray) -> None:
        """Queues audio; whole chunks go out paced."""
        encoded = ulaw_encode(pcm)
        self._pending += encoded
        self._queued += len(encoded)
        while len(self._pending) >= self._chunk_bytes:
            await self._send_chunk(self._chunk_bytes)

    async def play_ulaw(self, encoded: bytes) -> None:
        """Queues audio already in μ-law at 8 kHz (the cached greeting): nothing to encode."""
        self._pending += encoded
        self._queued += len(encoded)
        while len(self._pending) >= self._chunk_bytes:
            await self._send_chunk(self._chunk_bytes)

    async def finish(self) -> None:
        """Sends whatever is left of the current generation (a short last chunk)."""
        if self._pending:
            await self._send_chunk(len(self._pending))

    async def _send_chunk(self, size: int) -> None:
        now = anyio.current_time()
        lead = self._play_end - now
        if lead > self._max_lead_s:
            await anyio.sleep(lead - self._max_lead_s)
            now = anyio.current_time()
        payload = bytes(self._pending[:size])
        del self._pending[:size]
        duration_s = size / SAMPLE_RATE
        self._sent += size
        mark = self.ledger.record(self._generation, self._index, self._sent, duration_s * 1000.0)
        self._index += 1
        await self._send(self._encode_media(payload))
        await self._send(self._encode_mark(mark))
        if self.first_frame_sent_at is None:
            self.first_frame_sent_at = now
        play_start = max(self._play_end, now)
        self._play_end = play_start + duration_s
        if self._echo is not None and size:
            self._echo.played(play_start, self._play_end, rms_dbfs(ulaw_decode(payload)))
        self.bytes_sent += size
        self.last_audio_sent_at = now

    async def clear(self) -> None:
        """Drops everything queued at the carrier and here; the current generation was cut."""
        self._pending.clear()
        self.ledger.clear(self._generation)
        self._play_end = 0.0
        if self._echo is not None:
            self._echo.cut(anyio.current_time())
        self.clears_sent += 1
        await self._send(self._encode_clear())

    @property
    def play_end(self) -> float:
        """Estimated event-loop time when the carrier finishes playing what we sent (0 after a clear)."""
        return self._play_end

    def queued_s(self) -> float:
        """Seconds of our audio the carrier is estimated to still hold."""
        return max(0.0, self._play_end - anyio.current_time())
