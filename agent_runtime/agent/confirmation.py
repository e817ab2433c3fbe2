"""Spoken confirmation, enforced by the runtime instead of trusted to the model.

A model may send `confirmed=true` on its very first call of a tool that books, cancels or pays,
without ever asking the caller. So for a tool whose policy says `confirm`, the first call (per
distinct arguments) is refused with a result telling the model to read the details back and ask.
The call runs only when the model calls again with the same arguments and `confirmed=true`
after a new caller message has arrived since that refusal: the caller had a chance to say yes.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

from agent_runtime.agent.tools import Tool


def _canonical(arguments: dict[str, Any]) -> str:
    """The arguments minus the confirmed flag, in one spelling whatever the model's key order."""
    rest = {name: value for name, value in arguments.items() if name != "confirmed"}
    return json.dumps(pydantic_core.to_jsonable_python(rest), sort_keys=True)


class ConfirmationGate:
    """One per call: remembers which calls were refused, and when (in caller messages)."""

    def __init__(self) -> None:
        self._asked: dict[tuple[str, str], int] = {}  # (tool, arguments) -> caller messages seen then

    def refusal(self, tool: Tool, arguments: dict[str, Any], caller_messages: int) -> str | None:
        """None when the call may run now; otherwise the tool result that tells the model why not.

        `arguments` are the validated ones; `caller_messages` counts the caller's messages so far.
        """
        if not tool.policy.confirm:
            return None
        key = (tool.name, _canonical(arguments))
        asked_at = self._asked.get(key)
        if asked_at is not None and caller_messages > asked_at and arguments.get("confirmed") is True:
            del self._asked[key]  # confirmed once: the next identical request asks again
            return None
        self._asked[key] = caller_messages
        if asked_at is not None and caller_messages == asked_at:
            return (f"error: {tool.name} was not run: the caller has not answered yet. It needs the caller's "
                    "spoken confirmation: ask them and wait for their answer before calling again.")
        return (f"error: {tool.name} was not run: it needs the caller's spoken confirmation. Read the details "
                f"back to the caller and ask them to confirm; after they say yes, call {tool.name} again "
                "with the same arguments and confirmed=true.")
