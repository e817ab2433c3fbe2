"""The playout ledger: what the caller actually heard.

Every outbound chunk is recorded with its generation id, its byte range in that generation's
audio and the mark sent after it. A mark echo means "played", except after a `clear`: the
carrier echoes flushed marks exactly like played ones, so echoes of a cleared generation
count as not heard. Words are placed on the same byte axis (spread over their sentence's
audio by character count), so the heard text is the words that end inside the heard audio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Until a call has measured its voice, assume ~14 characters a second (165 wpm) at 8 kHz μ-law.
DEFAULT_BYTES_PER_CHAR = 8000 / 14.0


@dataclass(slots=True)
class Chunk:
    generation: int
    mark: str
    end_byte: int  # in the generation's audio
    duration_ms: float


@dataclass(slots=True)
class _Speech:
    """One generation's text laid over its audio."""

    words: list[tuple[int, str]] = field(default_factory=list)  # (end byte, word) of finished sentences
    open_text: str = ""  # the sentence whose audio is still arriving
    open_start: int = 0
    heard_bytes: int = 0
    heard_ms: float = 0.0


def mark_name(generation: int, index: int) -> str:
    return f"g{generation}:c{index}"


class PlayoutLedger:
    """Tracks sent chunks until their marks return. One per call; event loop only."""

    def __init__(self) -> None:
        self._pending: deque[Chunk] = deque()
        self._speech: dict[int, _Speech] = {}
        self._cleared: set[int] = set()
        self._bytes_per_char = DEFAULT_BYTES_PER_CHAR
        self.unknown_marks = 0

    def _of(self, generation: int) -> _Speech:
        speech = self._speech.get(generation)
        if speech is None:
            speech = self._speech[generation] = _Speech()
        return speech

    # ---- what was said where --------------------------------------------------------------
    def text_begins(self, generation: int, text: str, at_byte: int) -> None:
        speech = self._of(generation)
        speech.open_text, speech.open_start = text, at_byte

    def text_ends(self, generation: int, at_byte: int) -> None:
        """The open sentence's audio ended at `at_byte`: its word positions become exact."""
        speech = self._of(generation)
        text, start = speech.open_text, speech.open_start
        speech.open_text = ""
        if not text or at_byte <= start:
            return  # no audio carried it (TTS failed): none of its words can have been heard
        speech.words.extend(_spread(text, start, at_byte - start))
        self._bytes_per_char = (at_byte - start) / max(1, len(text))  # this voice's pace, for open sentences

    # ---- what went out and came back ------------------------------------------------------
    def record(self, generation: int, index: int, end_byte: int, duration_ms: float) -> str:
        """Registers a chunk about to be sent; returns the mark name to send after it."""
        name = mark_name(generation, index)
        self._pending.append(Chunk(generation, name, end_byte, duration_ms))
        return name

    def on_mark(self, name: str) -> Chunk | None:
        """Applies a mark echo; returns the chunk if it counts as heard."""
        # Marks come back in the order sent, so the match is at the head of the queue.
        while self._pending:
            chunk = self._pending.popleft()
            if chunk.mark == name:
                if chunk.generation in self._cleared:
                    return None
                speech = self._of(chunk.generation)
                speech.heard_bytes = max(speech.heard_bytes, chunk.end_byte)
                speech.heard_ms += chunk.duration_ms
                return chunk
        self.unknown_marks += 1
        return None

    def clear(self, generation: int) -> None:
        """Called when a `clear` is sent: whatever of `generation` is still pending was never heard."""
        self._cleared.add(generation)

    def pending(self, generation: int | None = None) -> int:
        """Chunks sent but not yet confirmed (of one generation, or all). A cleared generation has none."""
        if generation is None:
            return sum(1 for c in self._pending if c.generation not in self._cleared)
        if generation in self._cleared:
            return 0
        return sum(1 for c in self._pending if c.generation == generation)

    def heard_text(self, generation: int) -> str:
        speech = self._speech.get(generation)
        if speech is None:
            return ""
        heard = speech.heard_bytes
        words = [word for end, word in speech.words if end <= heard]
        if speech.open_text:  # cut mid-sentence: place its words at this voice's pace
            estimate = _spread(speech.open_text, speech.open_start, int(len(speech.open_text) * self._bytes_per_char))
            words += [word for end, word in estimate if end <= heard]
        return " ".join(words)

    def heard_ms(self, generation: int) -> float:
        speech = self._speech.get(generation)
        return speech.heard_ms if speech else 0.0


def _spread(text: str, start: int, length: int) -> list[tuple[int, str]]:
    """Word end positions over `length` bytes of audio, by character count."""
    words = text.split()
    total = sum(len(w) + 1 for w in words) or 1
    placed: list[tuple[int, str]] = []
    done = 0
    for word in words:
        done += len(word) + 1
        placed.append((start + length * done // total, word))
    return placed
