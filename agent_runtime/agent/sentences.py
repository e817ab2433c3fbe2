"""Cuts streamed reply text into speakable pieces so TTS can start on the first clause."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (or a newline) followed by whitespace; "3.5" and "e.g." mid-word do not split.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Before the first sentence is out, a long clause may go early at a comma, so speech starts sooner.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
_FENCE = re.compile(r"```")


def _fenced(text: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks; an unclosed fence runs to the end (more may still stream in)."""
    spans: list[tuple[int, int]] = []
    opened: int | None = None
    for match in _FENCE.finditer(text):
        if opened is None:
            opened = match.start()
        else:
            spans.append((opened, match.end()))
            opened = None
    if opened is not None:
        spans.append((opened, len(text) + 1))
    return spans


class SentenceChunker:
    """Feed text deltas; get back whole sentences (the first one may be a clause).

    Never cuts inside a ``` fence: a code block's lines end in newlines, and cutting there
    would send each line to TTS as if it were a sentence. A fenced block leaves as part of one
    piece, which the speech cleaner then drops whole. A fence marker split across deltas is
    safe: cuts happen only at whitespace, so "``" + "`" is still in the buffer when it completes.
    """

    def __init__(self, first_clause_min_chars: int = 40) -> None:
        self._buffer = ""
        self._first_clause_min_chars = first_clause_min_chars
        self._emitted_any = False

    def _cut(self, pattern: re.Pattern[str], start: int = 0) -> re.Match[str] | None:
        """The first match of `pattern` outside fenced code."""
        spans = _fenced(self._buffer) if "```" in self._buffer else []
        for match in pattern.finditer(self._buffer, start):
            if not any(begin <= match.start() < end for begin, end in spans):
                return match
        return None

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        pieces: list[str] = []
        while True:
            match = self._cut(_SENTENCE_END)
            if match is None and not self._emitted_any and len(self._buffer) >= self._first_clause_min_chars:
                match = self._cut(_CLAUSE_END, self._first_clause_min_chars // 2)
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
