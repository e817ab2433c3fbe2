"""Runs one model response's tool calls: concurrently, each under its tool's policy.

Policy means: a timeout, a filler line spoken if the tools are still running after a delay
(so the caller never sits in silence), whether a barge-in cancels the tool, and whether it
needs the caller's spoken confirmation first. Whatever happens (timeout, error, barge-in),
every call gets exactly one result in history, so the next model request is valid.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from agent_runtime.agent.confirmation import ConfirmationGate
from agent_runtime.agent.context import CallContext
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.tools import ToolError, ToolRegistry
from agent_runtime.providers.base import ToolCallRequest

log = logging.getLogger("agent_runtime.agent")

CANCELLED = "cancelled: the caller interrupted before this finished"
DEFAULT_FILLER_LINE = "One moment, please."  # the default of Agent.filler_line (prompts/filler.txt)

Speak = Callable[[str], Awaitable[None]]


class ToolRunner:
    """One per call: it keeps the call's confirmation state across turns."""

    def __init__(
        self, tools: ToolRegistry, context: CallContext, conversation: Conversation, filler_line: str = DEFAULT_FILLER_LINE
    ) -> None:
        self._tools = tools
        self._context = context
        self._conversation = conversation
        self._filler_line = filler_line
        self._confirmations = ConfirmationGate()

    async def run(self, calls: list[ToolCallRequest], speak: Speak) -> bool:
        """Runs the calls concurrently; True when a call whose tool ends the turn succeeded."""
        results: dict[str, str] = {}
        succeeded: set[str] = set()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._filler, calls, speak)
                async with anyio.create_task_group() as tools_tg:
                    for call in calls:
                        tools_tg.start_soon(self._run_one, call, results, succeeded)
                tg.cancel_scope.cancel()  # all done: no filler needed any more
        finally:
            for call in calls:  # exactly one result per call, whatever happened
                self._conversation.add_tool_result(call.id, results.get(call.id, CANCELLED))
        return any(
            c.id in succeeded and (t := self._tools.get(c.name)) is not None and t.policy.ends_turn for c in calls
        )

    async def _run_one(self, call: ToolCallRequest, results: dict[str, str], succeeded: set[str]) -> None:
        tool = self._tools.get(call.name)
        if tool is None:
            results[call.id] = f"error: there is no tool named {call.name!r}"
            return
        try:
            arguments = tool.validate(call.arguments)
        except ToolError as exc:
            results[call.id] = f"error: {exc}"
            return
        refusal = self._confirmations.refusal(tool, arguments, self._conversation.user_turns)
        if refusal is not None:
            results[call.id] = refusal
            return
        # A tool that must not be interrupted finishes (within its timeout) even on barge-in,
        # so its result is kept and it is never run twice.
        with anyio.CancelScope(shield=not tool.policy.interruptible):
            try:
                with anyio.fail_after(tool.policy.timeout_s):
                    results[call.id] = await tool.invoke(arguments, self._context)
                succeeded.add(call.id)
            except TimeoutError:
                log.warning("tool %s timed out after %.1f s", tool.name, tool.policy.timeout_s)
                results[call.id] = f"error: {tool.name} did not answer within {tool.policy.timeout_s:g} s"
            except ToolError as exc:
                results[call.id] = f"error: {exc}"
            except Exception as exc:
                log.warning("tool %s raised %s", tool.name, type(exc).__name__)
                results[call.id] = f"error: {tool.name} failed ({type(exc).__name__})"

    async def _filler(self, calls: list[ToolCallRequest], speak: Speak) -> None:
        """Speaks the filler that is due first, if the tools are still running by then.

        A tool without its own filler gets the agent's line; only `filler=""` keeps silent.
        """
        due = [(t.policy.filler_after_ms, t.policy.filler) for c in calls
               if (t := self._tools.get(c.name)) is not None and t.policy.filler != ""]
        if due:
            after_ms, line = min(due, key=lambda d: d[0])
            await anyio.sleep(after_ms / 1000.0)
            await speak(line if line is not None else self._filler_line)
