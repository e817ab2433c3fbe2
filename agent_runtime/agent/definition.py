"""What an agent is: its prompts and turn-taking options. Built once, shared by every call."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Formatter

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.tool_runner import DEFAULT_FILLER_LINE
from agent_runtime.agent.tools import ToolRegistry
from agent_runtime.audio.vad import VadOptions
from agent_runtime.call.turns import TurnOptions

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"

# Every text the agent speaks or is prompted with, and the prompts/ file it is read from.
# Required files have no default here; the optional ones default to the field's value below.
PROMPT_FILES: dict[str, tuple[str, bool]] = {
    "system_prompt": ("system.txt", True),
    "greeting": ("greeting.txt", True),
    "fallback_line": ("fallback.txt", True),
    "goodbye_line": ("goodbye.txt", False),
    "handoff_line": ("handoff.txt", False),
    "transfer_failed_line": ("transfer_failed.txt", False),
    "filler_line": ("filler.txt", False),
    "idle_line": ("idle.txt", False),
    "idle_goodbye_line": ("idle_goodbye.txt", False),
}


class _Defaulting(dict[str, str]):
    """Missing template variables render as empty text rather than crashing a live call."""

    def __missing__(self, key: str) -> str:
        return ""


def render_template(template: str, ctx: CallContext, variables: dict[str, str]) -> str:
    values = _Defaulting(variables)
    values.update(ctx.custom_parameters)
    values.update(
        caller=ctx.caller,
        callee=ctx.callee,
        call_id=ctx.call_id,
        time=dt.datetime.now().strftime("%H:%M"),
        date=dt.date.today().isoformat(),
    )
    return template.format_map(values)


def _check_template(name: str, template: str) -> None:
    try:
        list(Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"prompt {name!r} is not a valid template ({exc}); escape braces as {{{{ }}}}") from exc


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent definition. Prompts are templates: `{caller}`, `{time}`, custom parameters…"""

    name: str
    system_prompt: str
    greeting: str
    fallback_line: str
    variables: dict[str, str] = field(default_factory=dict)
    vad: VadOptions = field(default_factory=VadOptions.telephony)
    turns: TurnOptions = field(default_factory=TurnOptions)
    # Called with each DTMF digit as it arrives (the digit also reaches the LLM as caller input).
    on_dtmf: Callable[[str, CallContext], Awaitable[None] | None] | None = None
    # The agent's tools (plain functions, see agent_runtime.agent.tools); a tools/ module provides the default set.
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    max_tool_rounds: int = 4
    # After this many answers in a row that the model could not give, say goodbye and end the call.
    max_consecutive_failures: int = 3
    goodbye_line: str = "I'm sorry, I can't help right now. Please call again later. Goodbye."
    # The model gets the built-in `end_call` tool, to hang up once the caller's business is done.
    can_end_call: bool = True
    # Human queues the built-in `transfer_to_human` tool may hand callers to (none: no handoff tool).
    handoff_queues: tuple[str, ...] = ()
    handoff_line: str = "Let me connect you with a colleague who can help. One moment, please."
    transfer_failed_line: str = "I'm sorry, I couldn't connect you right now. Can I help you with something else?"
    # Spoken while a tool without its own filler is still running after its filler delay
    # (ToolPolicy.filler_after_ms, 1.5 s by default), so the caller never waits in silence.
    filler_line: str = DEFAULT_FILLER_LINE
    # Said when the caller has been silent for TurnOptions.idle_reprompt_s after the agent finished;
    # after TurnOptions.idle_max_prompts of them, the goodbye and the hang-up.
    idle_line: str = "Are you still there?"
    idle_goodbye_line: str = "I haven't heard anything, so I'll end the call now. Please call back any time. Goodbye."

    def __post_init__(self) -> None:
        for attr in PROMPT_FILES:
            _check_template(attr, getattr(self, attr))
        if not 1 <= self.max_tool_rounds <= 10:
            raise ValueError(f"agent {self.name!r}: max_tool_rounds must be 1..10, got {self.max_tool_rounds}")
        if self.max_consecutive_failures < 1:
            raise ValueError(f"agent {self.name!r}: max_consecutive_failures must be >= 1")

    @classmethod
    def from_prompts(cls, name: str = "default", prompts_dir: Path | None = None, **kwargs: object) -> "Agent":
        """Reads every text in PROMPT_FILES from a prompts folder: `system.txt`, `greeting.txt`
        and `fallback.txt` must exist; `goodbye.txt`, `handoff.txt`, `transfer_failed.txt` and
        `filler.txt` are optional (the field's default when missing). A keyword argument wins
        over the file."""
        folder = prompts_dir or DEFAULT_PROMPTS_DIR
        texts: dict[str, object] = {}
        for key, (filename, required) in PROMPT_FILES.items():
            path = folder / filename
            if path.is_file():
                texts[key] = path.read_text(encoding="utf-8").strip()
            elif required and key not in kwargs:
                raise ValueError(f"agent {name!r}: prompt file {path} is missing; create it or pass prompts_dir")
        variables = {"business_name": "Acme Dental"}
        variables.update(kwargs.pop("variables", {}) or {})  # type: ignore[arg-type]
        texts.update(kwargs)
        return cls(name=name, variables=variables, **texts)  # type: ignore[arg-type]
