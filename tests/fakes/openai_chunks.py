"""Chat-completion chunks shaped exactly as OpenAI streams them (protocols.md §5.1), and
whole scripted replies built from them: text, tool calls split into fragments, parallel calls."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_ID = "chatcmpl-fake"
CREATED = 1767225600

# ----------------------------------------------------------------- chunk builders (§5.1 shape)


def chunk(
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    id: str = DEFAULT_ID,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice, exactly as OpenAI sends it."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return _envelope([choice], None, id, model)


def _envelope(choices: list[dict[str, Any]], usage: dict[str, Any] | None, id: str, model: str) -> dict[str, Any]:
    return {"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "system_fingerprint": "fp_fake", "choices": choices, "usage": usage}


def role_chunk(**kw: Any) -> dict[str, Any]:
    return chunk({"role": "assistant", "content": None, "refusal": None}, **kw)


def text_chunk(text: str, **kw: Any) -> dict[str, Any]:
    return chunk({"content": text}, **kw)


def tool_call_fragment(
    index: int,
    *,
    id: str | None = None,
    name: str | None = None,
    arguments: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """One `delta.tool_calls[]` fragment. `id`/`name` belong on the first fragment only;
    `arguments=None` omits the key entirely (some servers do that for no-arg calls)."""
    call: dict[str, Any] = {"index": index}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        call["function"] = function
    return chunk({"tool_calls": [call]}, **kw)


def finish_chunk(reason: str, **kw: Any) -> dict[str, Any]:
    return chunk({}, reason, **kw)


def usage_chunk(
    prompt_tokens: int = 10, completion_tokens: int = 5, *, id: str = DEFAULT_ID,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """The extra final chunk sent with `stream_options.include_usage`: no choices."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens, "completion_tokens_details": {"reasoning_tokens": 0}}
    return _envelope([], usage, id, model)


@dataclass(frozen=True)
class ToolCall:
    """A scripted tool call: `fragments` are the argument pieces as streamed.

    `fragments=None` streams no `arguments` key at all; `()` streams only the usual empty
    first fragment `""`."""

    id: str
    name: str
    fragments: Sequence[str] | None = ()


def text_reply(pieces: Iterable[str] | str, *, usage: bool = True) -> list[dict[str, Any]]:
    """A plain text answer streamed as the given pieces (a str is split into words)."""
    if isinstance(pieces, str):
        pieces = re.findall(r"\S+\s*|\s+", pieces)
    out = [role_chunk(), *(text_chunk(p) for p in pieces), finish_chunk("stop")]
    return out + [usage_chunk()] if usage else out


def tool_call_reply(
    calls: Sequence[ToolCall], *, text: Iterable[str] = (), usage: bool = True
) -> list[dict[str, Any]]:
    """Optional text first, then each call's fragments (index groups 0, 1, …), then
    `finish_reason: tool_calls`."""
    out = [role_chunk(), *(text_chunk(p) for p in text)]
    for index, call in enumerate(calls):
        if call.fragments is None:
            out.append(tool_call_fragment(index, id=call.id, name=call.name))
            continue
        out.append(tool_call_fragment(index, id=call.id, name=call.name, arguments=""))
        out.extend(tool_call_fragment(index, arguments=f) for f in call.fragments)
    out.append(finish_chunk("tool_calls"))
    return out + [usage_chunk()] if usage else out

