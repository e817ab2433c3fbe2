"""The conversation as the model sees it: what the caller said and what the caller heard.

Invariant: every assistant `tool_calls` entry is followed by exactly one tool message per call
id, so the next request is always valid, even after an interruption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Said:
    """An assistant message and where its words sit among everything its generation spoke."""

    message: dict[str, Any]
    first_word: int
    last_word: int  # exclusive


class Conversation:
    def __init__(self, system_prompt: str) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        self._said: dict[int, list[_Said]] = {}
        # Caller messages so far; only ever grows (a confirmation needs the caller to have spoken since).
        self.user_turns = 0

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        self.user_turns += 1

    def add_assistant(
        self,
        generation: int,
        text: str,
        spoken: tuple[int, int] = (0, 0),
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """`spoken` is the range of this message's words in the generation's spoken words."""
        if not text and not tool_calls:
            return
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        self.messages.append(message)
        self._said.setdefault(generation, []).append(_Said(message, *spoken))

    def add_tool_result(self, tool_call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})

    def cut_to_heard(self, generation: int, heard_words: int, spoken_words: list[str]) -> None:
        """After an interruption each message of `generation` keeps exactly the words heard."""
        for said in self._said.get(generation, ()):
            heard = spoken_words[said.first_word : min(said.last_word, heard_words)]
            text = " ".join(heard)
            if text:
                said.message["content"] = text
            elif "tool_calls" in said.message:
                said.message["content"] = None
            else:
                # By identity: an earlier message with the same words ("Okay.") must stay.
                index = next((i for i, m in enumerate(self.messages) if m is said.message), None)
                if index is not None:
                    del self.messages[index]

    def transcript(self) -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in self.messages[1:] if m["role"] in ("user", "assistant") and m.get("content")]
