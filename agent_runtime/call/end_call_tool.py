"""The built-in `end_call` tool: the model ends the call once the caller's business is done.

The hang-up waits until the carrier confirmed the last words played (their marks came back),
so a goodbye is never cut off (S03).
"""

from __future__ import annotations

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.tools import Tool, ToolError, ToolPolicy


def end_call_tool() -> Tool:
    async def end_call(reason: str, ctx: CallContext) -> str:
        """End the phone call. Use it only after the caller's business is done and you have said goodbye
        in this same answer; the line closes once your last words have played.

        Args:
            reason: why the call ends, in a few words (e.g. "caller said goodbye")
        """
        if ctx.controls is None:
            raise ToolError("ending the call is not available here")
        return await ctx.controls.hang_up_after_speech(reason)

    # Not cancelled by a barge-in (a half-ended call helps nobody); no filler: it returns at once.
    return Tool(end_call, policy=ToolPolicy(timeout_s=5.0, filler="", interruptible=False, ends_turn=True))
