"""LLM adapter for any OpenAI-compatible Chat Completions endpoint (streaming, with tools)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from agent_runtime.providers.base import LLMEvent, TextDelta, ToolCallRequest


@dataclass(slots=True)
class _PartialCall:
    """Fragments of one streamed tool call, keyed by its `index` in the stream."""

    id: str = ""
    name: str = ""
    arguments: str = ""


class OpenAILLM:
    """Streams text deltas as they arrive, then one `ToolCallRequest` per assembled call."""

    def __init__(
        self, client: openai.AsyncOpenAI, model: str, temperature: float | None = None
    ) -> None:
        self._client = client
        self._model = model
        self._temperature = temperature

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMEvent]:
        kwargs: dict[str, Any] = {
            "model": self._model,
            "messages": list(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:  # some servers reject `tools: []`, so omit it entirely when there are none
            kwargs["tools"] = list(tools)
        if self._temperature is not None:
            kwargs["temperature"] = self._temperature

        calls: list[_PartialCall] = []  # in order of first appearance
        by_index: dict[int, _PartialCall] = {}
        stream = await self._client.chat.completions.create(**kwargs)
        try:
            async for chunk in stream:
                # The usage chunk (and some proxies' keep-alives) carry no choices.
                for choice in chunk.choices or ():
                    delta = choice.delta
                    if delta is not None and delta.content:
                        yield TextDelta(delta.content)
                    for frag in (delta.tool_calls if delta is not None else None) or ():
                        call = by_index.get(frag.index)
                        # Some servers reuse an index for a second call: a new id starts a new call.
                        if call is None or (frag.id and call.id and frag.id != call.id):
                            call = by_index[frag.index] = _PartialCall()
                            calls.append(call)
                        if frag.id and not call.id:
                            call.id = frag.id
                        if frag.function is not None:
                            if frag.function.name and not call.name:
                                call.name = frag.function.name
                            if frag.function.arguments:
                                call.arguments += frag.function.arguments
                    if choice.finish_reason == "tool_calls" and calls:
                        for event in _flush(calls, by_index):
                            yield event
        finally:
            # Closing the HTTP response stops the server's generation when the consumer
            # abandons the iterator (barge-in).
            await stream.close()
        # Stream ended without finish_reason "tool_calls" (some servers say "stop").
        for event in _flush(calls, by_index):
            yield event


def _flush(calls: list[_PartialCall], by_index: dict[int, _PartialCall]) -> list[ToolCallRequest]:
    """Completed calls in stream order; empties the buffers so nothing is emitted twice."""
    out = [ToolCallRequest(id=c.id, name=c.name, arguments=c.arguments or "{}") for c in calls]
    calls.clear()
    by_index.clear()
    return out
