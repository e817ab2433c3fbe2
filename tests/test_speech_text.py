"""Speakable text (S16): markdown, emoji, URLs and code never reach TTS; numbers said naturally."""

from __future__ import annotations

import re

import pytest

from agent_runtime.agent.sentences import SentenceChunker
from agent_runtime.agent.speech_text import clean_for_speech

S16_CHUNKS = ["**Store", " hours:**\n- Mon", "–Fri: 9am–6pm\n- Sat: closed 😊 ✅ [details](https://example.com/h)", "`code`\n# End"]


def _spoken(chunks: list[str]) -> str:
    chunker = SentenceChunker()
    pieces: list[str] = []
    for chunk in chunks:
        pieces += chunker.feed(chunk)
    tail = chunker.flush()
    pieces += [tail] if tail else []
    return " ".join(clean_for_speech(p) for p in pieces)


@pytest.mark.parametrize("split", [S16_CHUNKS, list("".join(S16_CHUNKS)), ["".join(S16_CHUNKS)]])
def test_s16_markdown_and_emoji_are_not_read_aloud(split: list[str]) -> None:
    spoken = _spoken(split)
    for forbidden in ("*", "#", "`", "[", "]", "(", ")", "http", "example.com", "😊", "✅", "code"):
        assert forbidden not in spoken, (forbidden, spoken)
    assert not re.search(r"(^|\s)- ", spoken)
    positions = [spoken.index(word) for word in ("Store hours", "Mon–Fri", "9am–6pm", "Sat", "closed", "details")]
    assert positions == sorted(positions), spoken


@pytest.mark.parametrize(
    "text, spoken",
    [
        ("That is $25.50 in total.", "That is 25 dollars and 50 cents in total."),
        ("It costs €1.", "It costs 1 euro."),
        ("Call +1 (555) 123-4567 now.", "Call 1, 5 5 5, 1 2 3, 4 5 6 7 now."),
        ("Come at 3:30 pm or 10:00.", "Come at 3 30 pm or 10."),
        ("At 9:05.", "At 9 oh 5."),
        ("A 15% discount.", "A 15 percent discount."),
        ("Version 3.5 is out.", "Version 3.5 is out."),
        ("See www.acme.com for more", "See for more"),
    ],
)
def test_numbers_are_spoken_naturally(text: str, spoken: str) -> None:
    assert clean_for_speech(text) == spoken


def test_only_markup_leaves_nothing_to_say() -> None:
    assert clean_for_speech("```python\nprint(1)\n```") == ""
    assert clean_for_speech("🎉✅") == ""
