"""The playout ledger: what the caller actually heard.

Every outbound chunk is recorded with its generation id, the text it carries and the mark
sent after it. A mark echo means "played", except after a `clear`: the carrier echoes flushed
marks exactly like played ones, so echoes of a cleared generation count as not heard.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Chunk:
    generation: int
    index: int
    mark: str
    duration_ms: float
    text: str  # the words this chunk finishes speaking ("" when mid-sentence)
    played: bool = False


def mark_name(generation: int, index: int) -> str:
    return f"g{generation}:c{index}"


class PlayoutLedger:
    """Tracks sent chunks until their marks return. One per call; not thread-safe (event loop only)."""

    def __init__(self) -> None:
        self._pending: deque[Chunk] = deque()
        self._by_generation_heard: dict[int, list[str]] = {}
        self._heard_ms: dict[int, float] = {}
        self._cleared: set[int] = set()
        self.unknown_marks = 0

    def record(self, generation: int, index: int, duration_ms: float, text: str = "") -> str:
        """Registers a chunk about to be sent; returns the mark name to send after it."""
        name = mark_name(generation, index)
        self._pending.append(Chunk(generation, index, name, duration_ms, text))
        return name

    def on_mark(self, name: str) -> Chunk | None:
        """Applies a mark echo; returns the chunk if it counts as heard."""
        # Marks come back in the order sent, so the match is at the head of the queue.
        while self._pending:
            chunk = self._pending.popleft()
            if chunk.mark == name:
                if chunk.generation in self._cleared:
                    return None
                chunk.played = True
                self._heard_ms[chunk.generation] = self._heard_ms.get(chunk.generation, 0.0) + chunk.duration_ms
                if chunk.text:
                    self._by_generation_heard.setdefault(chunk.generation, []).append(chunk.text)
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
        return " ".join(self._by_generation_heard.get(generation, ()))

    def heard_ms(self, generation: int) -> float:
        return self._heard_ms.get(generation, 0.0)
