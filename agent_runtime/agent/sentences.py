"""Cuts streamed reply text into speakable pieces so TTS can start on the first clause."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (or a newline) followed by whitespace; "3.5" and "e.g." mid-word do not split.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Before the first sentence is out, a long clause may go early at a comma, so speech starts sooner.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


class SentenceChunker:
    """Feed text deltas; get back whole sentences (the first one may be a clause)."""

    def __init__(self, first_clause_min_chars: int = 40) -> None:
        self._buffer = ""
        self._first_clause_min_chars = first_clause_min_chars
        self._emitted_any = False

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        pieces: list[str] = []
        while True:
            match = _SENTENCE_END.search(self._buffer)
            if match is None and not self._emitted_any and len(self._buffer) >= self._first_clause_min_chars:
                match = _CLAUSE_END.search(self._buffer, self._first_clause_min_chars // 2)
            if match is None:
                break
            piece = self._buffer[: match.start()].strip()
            self._buffer = self._buffer[match.end() :]
            if piece:
                pieces.append(piece)
                self._emitted_any = True
        return pieces

    def flush(self) -> str | None:
        piece, self._buffer = self._buffer.strip(), ""
        return piece or None
