"""The built-in handoff tool: the model (or code) hands the caller to a named human queue."""

from __future__ import annotations

from collections.abc import Sequence

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.tools import Tool, ToolError, ToolPolicy


def handoff_tool(queues: Sequence[str]) -> Tool:
    """`transfer_to_human`, limited to `queues` (the first is the default)."""
    if not queues:
        raise ValueError("handoff_tool needs at least one queue name")
    allowed = list(queues)

    async def transfer_to_human(queue: str, reason: str, summary: str, ctx: CallContext) -> str:
        """Hand the caller to a person in a human queue, when they ask for a human or you cannot help.

        Args:
            queue: the human queue to hand the caller to
            reason: why, in a few words (e.g. "caller_requested_human", "billing dispute")
            summary: one or two sentences for the person who takes the call: who, what they need, what was done
        """
        if queue not in allowed:
            raise ToolError(f"unknown queue {queue!r}; use one of {', '.join(allowed)}")
        if ctx.controls is None:
            raise ToolError("handoff is not available on this call")
        return await ctx.controls.hand_off(queue, reason, summary)

    # A handoff must not be half done by a barge-in, and the model says nothing after it.
    tool = Tool(transfer_to_human, policy=ToolPolicy(timeout_s=10.0, interruptible=False, ends_turn=True))
    tool.parameters["properties"]["queue"]["enum"] = allowed
    return tool
