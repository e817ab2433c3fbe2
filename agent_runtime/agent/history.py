"""The conversation as the model sees it: what the caller said and what the caller heard."""

from __future__ import annotations

from typing import Any


class Conversation:
    """OpenAI-style chat messages, with assistant messages keyed by generation so they can be cut."""

    def __init__(self, system_prompt: str) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        self._assistant_by_generation: dict[int, dict[str, Any]] = {}

    def add_user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def add_assistant(self, generation: int, text: str) -> None:
        if not text:
            return
        message: dict[str, Any] = {"role": "assistant", "content": text}
        self.messages.append(message)
        self._assistant_by_generation[generation] = message

    def cut_to_heard(self, generation: int, heard: str) -> None:
        """After an interruption the reply holds exactly the words the caller heard (or goes)."""
        message = self._assistant_by_generation.get(generation)
        if message is None:
            return
        if heard:
            message["content"] = heard
        else:
            self.messages.remove(message)
            del self._assistant_by_generation[generation]

    def transcript(self) -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in self.messages[1:] if m.get("content")]
