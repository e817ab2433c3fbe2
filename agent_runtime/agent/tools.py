"""Tools are plain Python functions. Type hints and the docstring are the schema.

`@tool` (or `Tool.from_function`) reads the signature with pydantic: str/int/float/bool,
Literal and Enum, Optional and defaults, lists, nested pydantic models or dataclasses.
Arguments from the model are validated before the function runs; a parameter annotated
`CallContext` receives the call's context instead of coming from the model.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

import anyio
import pydantic

from agent_runtime.agent.context import CallContext

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARG_DOC = re.compile(r"^\s*(?::param\s+)?(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


DEFAULT_FILLER_AFTER_MS = 1500


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """How a tool behaves under time pressure and interruption.

    Filler: a caller who hears nothing for ~2 s thinks the line dropped. So every tool that
    is still running after `filler_after_ms` (default 1.5 s: with ~0.3-0.5 s to first TTS
    audio, the caller hears something by ~2 s) gets a short line spoken over the wait.
    `filler=None` (the default) speaks the agent's filler line (`Agent.filler_line`,
    prompts/filler.txt, "One moment, please." unless changed); a string speaks that line
    instead; `filler=""` keeps silent (a tool known to be quick, or one that speaks for itself).
    Only one filler is spoken per round of tool calls: the one due first.
    """

    timeout_s: float = 10.0
    filler: str | None = None  # None: the agent's filler line; "": none at all
    filler_after_ms: int = DEFAULT_FILLER_AFTER_MS
    interruptible: bool = True  # a barge-in cancels it; otherwise it finishes and its result is kept
    # The runtime refuses the first call (per distinct arguments) and runs it only when the model
    # calls again with confirmed=true after the caller has spoken since (agent/confirmation.py).
    confirm: bool = False
    ends_turn: bool = False  # after it succeeds the model is not asked again (e.g. a handoff)

    def __post_init__(self) -> None:
        if not 0.05 <= self.timeout_s <= 600:
            raise ValueError(f"tool timeout_s must be 0.05..600 s, got {self.timeout_s}")
        if self.filler_after_ms < 0:
            raise ValueError(f"tool filler_after_ms must be >= 0, got {self.filler_after_ms}")


class ToolError(Exception):
    """Raise inside a tool to give the model a clear error message (not a crash)."""


def _split_docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """Summary paragraph and per-parameter docs (Google `Args:` or Sphinx `:param x:` style)."""
    doc = inspect.getdoc(fn) or ""
    summary: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if stripped.lower() in ("returns:", "raises:", "yields:", "examples:"):
            in_args = False
            continue
        match = _ARG_DOC.match(line)
        if (in_args or stripped.startswith(":param")) and match:
            params[match.group(1)] = match.group(2).strip()
        elif not in_args and not params and not stripped.startswith(":"):
            summary.append(stripped)
    return " ".join(s for s in summary if s).strip(), params


class Tool:
    def __init__(self, fn: Callable[..., Any], name: str | None = None, policy: ToolPolicy | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_NAME.pattern}")
        self.policy = policy or ToolPolicy()
        self.is_async = inspect.iscoroutinefunction(fn)
        description, param_docs = _split_docstring(fn)
        if not description:
            raise ValueError(f"tool {self.name!r} needs a docstring: the model reads it to decide when to call it")
        self.description = description
        hints = get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        self.context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            annotation = hints.get(param.name, Any)
            if annotation is CallContext or CallContext in get_args(annotation):  # also `CallContext | None`
                self.context_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ValueError(f"tool {self.name!r}: *args/**kwargs cannot be described to the model")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, pydantic.Field(default, description=param_docs.get(param.name)))
        if self.policy.confirm:
            fields["confirmed"] = (bool, pydantic.Field(False, description="true only after the caller said yes"))
        self.arguments_model = pydantic.create_model(f"{self.name}_arguments", **fields)
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        self.parameters = schema

    @classmethod
    def from_function(cls, fn: Callable[..., Any], **policy: Any) -> "Tool":
        name = policy.pop("name", None)
        return cls(fn, name=name, policy=ToolPolicy(**policy))

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools[]` entry."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def validate(self, arguments: str) -> dict[str, Any]:
        """Parses and validates the model's JSON; raises ToolError with a message for the model."""
        try:
            model = self.arguments_model.model_validate_json(arguments or "{}")
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None
        # Keep nested models as models: the function's own type hints expect them.
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(self, arguments: dict[str, Any], context: CallContext) -> str:
        """Runs the function (sync ones in a worker thread) and renders its result as text."""
        if self.policy.confirm:
            if not arguments.pop("confirmed", False):
                raise ToolError(f"{self.name} needs the caller's spoken confirmation: ask, then call again with confirmed=true")
        if self.context_param:
            arguments[self.context_param] = context
        if self.is_async:
            result = await self.fn(**arguments)
        else:
            # A blocking tool must never stall the frame loop (S13); if it hangs past its
            # timeout, the thread is abandoned and the call goes on.
            result = await anyio.to_thread.run_sync(lambda: self.fn(**arguments), abandon_on_cancel=True)
        return render_result(result)


def render_result(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    return json.dumps(pydantic.TypeAdapter(Any).dump_python(result, mode="json"))


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, **policy: Any
) -> Any:
    """Decorator: `@tool` or `@tool(timeout_s=5, filler="One moment.", interruptible=False)`."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, policy=ToolPolicy(**policy))

    return wrap(fn) if fn is not None else wrap


class ToolRegistry:
    """The tools one agent offers, by name."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool | Callable[..., Any]) -> Tool:
        t = item if isinstance(item, Tool) else Tool(item)
        if t.name in self._tools:
            raise ValueError(f"two tools are named {t.name!r}")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self._tools.values()]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self):  # noqa: ANN204
        return iter(self._tools.values())


ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]
