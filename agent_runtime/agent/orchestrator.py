"""The LLM loop of one generation: model → speech and tool calls → tools → model, bounded.

Text is cleaned for speech and sent to TTS sentence by sentence as it streams; history keeps
the model's own text. Tool calls run concurrently with their policy (timeout, filler line,
interruptible or not). Whatever happens (timeout, error, barge-in), every tool call written
to history gets exactly one result.
"""

from __future__ import annotations

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
from agent_runtime.agent.tools import ToolError, ToolRegistry
from agent_runtime.providers.base import LLM, TextDelta, ToolCallRequest

log = logging.getLogger("agent_runtime.agent")

CANCELLED = "cancelled: the caller interrupted before this finished"
MAX_ATTEMPTS = 2  # per model call: one quick retry for a transient fault before the fallback
QUICK_RETRY_S = 0.5  # only retry when the provider asks us to wait no longer than this


@dataclass(slots=True)
class Outcome:
    said_words: list[str] = field(default_factory=list)  # every word sent to TTS, fillers too
    failed: bool = False  # the model could not answer; the fallback line was spoken
    tool_calls: int = 0


class Orchestrator:
    def __init__(
        self,
        llm: LLM,
        tools: ToolRegistry,
        context: CallContext,
        conversation: Conversation,
        fallback_line: str,
        max_rounds: int = 4,
    ) -> None:
        self._llm = llm
        self._tools = tools
        self._context = context
        self._conversation = conversation
        self._fallback_line = fallback_line
        self._max_rounds = max_rounds

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
        results: dict[str, str] = {}
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._filler, calls, say, outcome)
                async with anyio.create_task_group() as tools_tg:
                    for call in calls:
                        tools_tg.start_soon(self._run_one, call, results)
                tg.cancel_scope.cancel()  # all done: no filler needed any more
        finally:
            for call in calls:  # exactly one result per call, whatever happened
                self._conversation.add_tool_result(call.id, results.get(call.id, CANCELLED))
        return any(
            (t := self._tools.get(c.name)) is not None and t.policy.ends_turn and not results.get(c.id, "error").startswith(("error", "cancelled"))
            for c in calls
        )

    async def _run_one(self, call: ToolCallRequest, results: dict[str, str]) -> None:
        tool = self._tools.get(call.name)
        if tool is None:
            results[call.id] = f"error: there is no tool named {call.name!r}"
            return
        try:
            arguments = tool.validate(call.arguments)
        except ToolError as exc:
            results[call.id] = f"error: {exc}"
            return
        # A tool that must not be interrupted finishes (within its timeout) even on barge-in,
        # so its result is kept and it is never run twice.
        with anyio.CancelScope(shield=not tool.policy.interruptible):
            try:
                with anyio.fail_after(tool.policy.timeout_s):
                    results[call.id] = await tool.invoke(arguments, self._context)
            except TimeoutError:
                log.warning("tool %s timed out after %.1f s", tool.name, tool.policy.timeout_s)
                results[call.id] = f"error: {tool.name} did not answer within {tool.policy.timeout_s:g} s"
            except ToolError as exc:
                results[call.id] = f"error: {exc}"
            except Exception as exc:
                log.warning("tool %s raised %s", tool.name, type(exc).__name__)
                results[call.id] = f"error: {tool.name} failed ({type(exc).__name__})"

    async def _filler(self, calls: list[ToolCallRequest], say: MemoryObjectSendStream[str], outcome: Outcome) -> None:
        """Speaks the first filler line if the tools are still running after its delay."""
        policies = [t.policy for c in calls if (t := self._tools.get(c.name)) and t.policy.filler]
        if policies:
            first = min(policies, key=lambda p: p.filler_after_ms)
            await anyio.sleep(first.filler_after_ms / 1000.0)
            await self._say(first.filler or "", say, outcome)


def _as_message(call: ToolCallRequest) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


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
