"""Speakable text (S16): markdown, emoji, URLs and code never reach TTS; numbers said naturally."""

from __future__ import annotations

import re

import anyio
import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.orchestrator import Orchestrator, Outcome
from agent_runtime.agent.sentences import SentenceChunker
from agent_runtime.agent.speech_text import clean_for_speech
from agent_runtime.agent.tools import ToolRegistry
from agent_runtime.providers.openai_llm import OpenAILLM
from fakes.openai_server import text_reply

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
    _assert_s16_speakable(_spoken(split))


def _assert_s16_speakable(spoken: str) -> None:
    for forbidden in ("*", "#", "`", "[", "]", "(", ")", "http", "example.com", "😊", "✅", "code"):
        assert forbidden not in spoken, (forbidden, spoken)
    assert not re.search(r"(^|\s)- ", spoken)
    positions = [spoken.index(word) for word in ("Store hours", "Mon–Fri", "9am–6pm", "Sat", "closed", "details")]
    assert positions == sorted(positions), spoken


async def _reply(client, chunks: list[str]) -> tuple[list[str], Conversation]:  # noqa: ANN001
    """One reply streamed by the local server as exactly these chunks; the pieces sent to TTS."""
    conversation = Conversation("sys")
    conversation.add_user("Hello")
    orchestrator = Orchestrator(OpenAILLM(client, "gpt-4o-mini"), ToolRegistry(), CallContext("c"), conversation, "Sorry?")
    send, recv = anyio.create_memory_object_stream[str](100)
    async with send:
        await orchestrator.respond(1, send, {}, Outcome())
    return [piece async for piece in recv], conversation


@pytest.mark.anyio
async def test_s16_through_the_orchestrator_tts_gets_clean_text_and_history_the_original(openai_server, openai_client) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply(S16_CHUNKS))
    pieces, conversation = await _reply(openai_client, S16_CHUNKS)
    _assert_s16_speakable(" ".join(pieces))
    assert all(pieces)  # nothing empty reaches TTS
    assert conversation.messages[-1] == {"role": "assistant", "content": "".join(S16_CHUNKS)}


FENCED = "Here is the code:\n```python\nprint(1)\nx = [2, 3]\n```\nCall 555-123-4567."


@pytest.mark.anyio
@pytest.mark.parametrize(
    "chunks",
    [[FENCED], list(FENCED), ["Here is the code:\n``", "`python\nprint(", "1)\nx = [2, 3]\n``", "`\nCall 555-123-4567."]],
    ids=["whole", "char-by-char", "fence-markers-split"],
)
async def test_a_fenced_code_block_is_not_read_line_by_line(openai_server, openai_client, chunks: list[str]) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply(chunks))
    pieces, conversation = await _reply(openai_client, chunks)
    assert pieces == ["Here is the code:", "Call 5 5 5, 1 2 3, 4 5 6 7."]
    assert conversation.messages[-1]["content"] == FENCED


@pytest.mark.parametrize("split", [[FENCED], list(FENCED)], ids=["whole", "char-by-char"])
def test_the_chunker_never_cuts_inside_a_fence(split: list[str]) -> None:
    chunker = SentenceChunker()
    pieces = [piece for delta in split for piece in chunker.feed(delta)]
    assert pieces == ["Here is the code:", "```python\nprint(1)\nx = [2, 3]\n```"]
    assert chunker.flush() == "Call 555-123-4567."


def test_an_unclosed_fence_is_held_to_the_end_and_not_spoken() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("Try this:\n```\nrm -rf /tmp/x\nls\n") == ["Try this:"]
    assert clean_for_speech(chunker.flush() or "") == ""


@pytest.mark.parametrize(
    "text, spoken",
    [
        ("That is $25.50 in total.", "That is 25 dollars and 50 cents in total."),
        ("It costs €1.", "It costs 1 euro."),
        ("Call +1 (555) 123-4567 now.", "Call 1, 5 5 5, 1 2 3, 4 5 6 7 now."),
        ("Please call 555-123-4567.", "Please call 5 5 5, 1 2 3, 4 5 6 7."),
        ("Is it 555-123-4567?", "Is it 5 5 5, 1 2 3, 4 5 6 7?"),
        ("Pi is 3.14159265358 or so.", "Pi is 3.14159265358 or so."),
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
