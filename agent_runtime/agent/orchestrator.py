"""The LLM loop of one generation: model → speech and tool calls → tools → model, bounded.

Text is cleaned for speech and sent to TTS sentence by sentence as it streams; history keeps
the model's own text. Tool calls run concurrently with their policy (agent/tool_runner.py).
Whatever happens (timeout, error, barge-in), every tool call written to history gets exactly
one result, and its arguments are valid JSON, so the next request is always valid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import openai
from anyio.streams.memory import MemoryObjectSendStream

from agent_runtime.agent.definition import CallContext
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.sentences import SentenceChunker
from agent_runtime.agent.speech_text import clean_for_speech
from agent_runtime.agent.tool_runner import CANCELLED, DEFAULT_FILLER_LINE, ToolRunner
from agent_runtime.agent.tools import ToolRegistry
from agent_runtime.providers.base import LLM, TextDelta, ToolCallRequest

log = logging.getLogger("agent_runtime.agent")

__all__ = ["CANCELLED", "Orchestrator", "Outcome"]

MAX_ATTEMPTS = 2  # per model call: one quick retry for a transient fault before the fallback
QUICK_RETRY_S = 0.5  # only retry when the provider asks us to wait no longer than this


@dataclass(slots=True)
class Outcome:
    said_words: list[str] = field(default_factory=list)  # every word sent to TTS, fillers too
    failed: bool = False  # the model could not answer; the fallback line was spoken
    tool_calls: int = 0
    # True exactly while tool calls execute: silence then is a tool working, not a stall
    # (the never-silent watchdog uses it; the filler line covers the wait).
    tools_running: bool = False


class Orchestrator:
    def __init__(
        self,
        llm: LLM,
        tools: ToolRegistry,
        context: CallContext,
        conversation: Conversation,
        fallback_line: str,
        max_rounds: int = 4,
        filler_line: str = DEFAULT_FILLER_LINE,
    ) -> None:
        """`fallback_line` and `filler_line` are already rendered for this call."""
        self._llm = llm
        self._tools = tools
        self._context = context
        self._conversation = conversation
        self._fallback_line = fallback_line
        self._max_rounds = max_rounds
        self._runner = ToolRunner(tools, context, conversation, filler_line)

    async def respond(
        self, generation: int, say: MemoryObjectSendStream[str], stages: dict[str, float], outcome: Outcome
    ) -> None:
        """Fills `outcome` as it goes, so a caller that cancels us still sees what was said."""
        for round_no in range(self._max_rounds):
            # The last round offers no tools, so the loop always ends in words.
            tools = self._tools.schemas() if self._tools and round_no < self._max_rounds - 1 else None
            calls = await self._model_turn(generation, say, stages, outcome, tools)
            if not calls:
                return
            if await self._run_tools(calls, say, outcome):
                return  # a tool ended the turn (a handoff): the model has nothing more to say

    async def _say(self, text: str, say: MemoryObjectSendStream[str], outcome: Outcome) -> None:
        spoken = clean_for_speech(text)
        if spoken:
            outcome.said_words.extend(spoken.split())  # the same words, in the same order, as the ledger's
            await say.send(spoken)

    async def _model_turn(
        self,
        generation: int,
        say: MemoryObjectSendStream[str],
        stages: dict[str, float],
        outcome: Outcome,
        tools: Sequence[dict[str, Any]] | None,
    ) -> list[ToolCallRequest]:
        """One streamed model call; records its assistant message even when cut short."""
        text: list[str] = []
        calls: list[ToolCallRequest] = []
        first_word = len(outcome.said_words)
        chunker = SentenceChunker()
        complete = False
        try:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    async for event in self._llm.stream(self._conversation.messages, tools):
                        if isinstance(event, ToolCallRequest):
                            calls.append(event)
                        elif isinstance(event, TextDelta) and event.text:
                            stages.setdefault("llm_first_token", anyio.current_time())
                            text.append(event.text)
                            for sentence in chunker.feed(event.text):
                                stages.setdefault("first_sentence", anyio.current_time())
                                await self._say(sentence, say, outcome)
                    break
                except Exception as exc:
                    wait = _retry_after(exc)
                    log.warning("llm failed (%s), attempt %d", _describe(exc), attempt, extra={"call_id": self._context.call_id})
                    if text or calls or attempt == MAX_ATTEMPTS or wait is None or wait > QUICK_RETRY_S:
                        if not text:
                            outcome.failed = True
                            await self._say(self._fallback_line, say, outcome)  # spoken, not in history
                        calls = []  # a broken stream's tool calls are not trustworthy
                        break
                    await anyio.sleep(wait)
            tail = chunker.flush()
            if tail:
                stages.setdefault("first_sentence", anyio.current_time())
                await self._say(tail, say, outcome)
            elif not text and not calls and not outcome.failed:
                # An empty answer (a stream that ended with nothing) is dead air too.
                log.warning("llm returned nothing", extra={"call_id": self._context.call_id})
                outcome.failed = True
                await self._say(self._fallback_line, say, outcome)
            complete = True
        finally:
            # Written even when cut short: what was said (the ledger trims it to what was heard).
            tool_calls = [_as_message(c) for c in calls] if complete else None
            last_word = first_word if outcome.failed and not text else len(outcome.said_words)
            self._conversation.add_assistant(generation, "".join(text), (first_word, last_word), tool_calls)
        return calls

    async def _run_tools(self, calls: list[ToolCallRequest], say: MemoryObjectSendStream[str], outcome: Outcome) -> bool:
        """Runs the calls concurrently; True when one that ends the turn succeeded."""
        outcome.tool_calls += len(calls)
        outcome.tools_running = True
        try:
            return await self._runner.run(calls, lambda line: self._say(line, say, outcome))
        finally:
            outcome.tools_running = False


def _as_message(call: ToolCallRequest) -> dict[str, Any]:
    """Valid arguments byte for byte (S09). Invalid JSON is stored as `{}`: strict servers reject
    a request whose history holds it, which would break every later turn; the tool result
    still tells the model its arguments were invalid."""
    try:
        json.loads(call.arguments)
        arguments = call.arguments
    except ValueError:
        arguments = "{}"
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def _retry_after(exc: Exception) -> float | None:
    """Seconds to wait before one retry, or None when a retry cannot help."""
    if isinstance(exc, openai.RateLimitError):
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        try:
            return float(header) if header is not None else None
        except ValueError:
            return None
    if isinstance(exc, openai.InternalServerError | openai.APIConnectionError):
        return 0.2
    return None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}"
