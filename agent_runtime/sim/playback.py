"""The carrier's playback buffer, modelled exactly: a FIFO of audio and marks.

A mark is echoed when all audio queued before it has played, immediately if nothing is
queued, and `clear` drops queued audio and echoes every pending mark at once.
"""

from __future__ import annotations

from collections import deque

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
SILENCE = b"\xff" * FRAME_BYTES


class PlaybackBuffer:
    def __init__(self) -> None:
        self._audio = bytearray()
        self._queued_total = 0  # bytes ever queued (absolute position of the buffer's end)
        self._played_total = 0  # bytes ever played or dropped
        self._marks: deque[tuple[int, str]] = deque()  # (absolute position, name)

    def add_audio(self, payload: bytes) -> None:
        self._audio += payload
        self._queued_total += len(payload)

    def add_mark(self, name: str) -> list[str]:
        """Queues a mark; returns marks to echo now (this one, if nothing is queued ahead of it)."""
        self._marks.append((self._queued_total, name))
        return self._due()

    def clear(self) -> list[str]:
        """Drops queued audio; every pending mark is echoed at once."""
        self._played_total += len(self._audio)
        self._audio.clear()
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names

    def play_frame(self) -> tuple[bytes, list[str]]:
        """Plays 20 ms: the audio (silence when empty) and the marks now due."""
        if self._audio:
            frame = bytes(self._audio[:FRAME_BYTES])
            del self._audio[:FRAME_BYTES]
            self._played_total += len(frame)
            if len(frame) < FRAME_BYTES:
                frame += SILENCE[len(frame) :]
        else:
            frame = SILENCE
        return frame, self._due()

    def _due(self) -> list[str]:
        due: list[str] = []
        while self._marks and self._marks[0][0] <= self._played_total:
            due.append(self._marks.popleft()[1])
        return due

    @property
    def queued_bytes(self) -> int:
        return len(self._audio)
