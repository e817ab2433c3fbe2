"""The default agent's tools: plain Python functions. Edit or add your own here.

Every function in TOOLS becomes a tool: its name, its docstring (the summary and the
`Args:` lines) and its type hints are what the model sees. Sync functions run in a worker
thread; async ones on the event loop. `@tool(...)` sets a policy: timeout, a filler line
spoken while it runs, whether a barge-in cancels it, whether it needs a spoken "yes" first.
A tool still running after 1.5 s gets the agent's filler line (prompts/filler.txt, "One
moment, please.") unless it sets its own `filler=...`, or `filler=""` for none. With
`confirm=True` the runtime refuses the first call and runs it only after the caller answered.
"""

from __future__ import annotations

import datetime as dt

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.tools import tool

OPENING_HOURS = {
    "monday": "8 am to 6 pm", "tuesday": "8 am to 6 pm", "wednesday": "8 am to 6 pm",
    "thursday": "8 am to 8 pm", "friday": "8 am to 4 pm", "saturday": "9 am to 1 pm", "sunday": "closed",
}


def get_opening_hours(day: str) -> str:
    """Opening hours of the practice on one day of the week.

    Args:
        day: the day of the week, e.g. "monday"
    """
    return OPENING_HOURS.get(day.strip().lower(), f"unknown day {day!r}; ask for a day of the week")


@tool(timeout_s=2.0)
def get_current_time(ctx: CallContext) -> str:
    """The current local date and time, for questions like "are you open now?"."""
    return dt.datetime.now().strftime("%A %H:%M")


TOOLS = [get_opening_hours, get_current_time]
