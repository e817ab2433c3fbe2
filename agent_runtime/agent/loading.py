"""Finds the agent a server runs: the default (prompts/ + tools/) or `--agent path.py:name`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from agent_runtime.agent.definition import DEFAULT_PROMPTS_DIR, Agent
from agent_runtime.agent.tools import ToolRegistry

DEFAULT_TOOLS_FILE = DEFAULT_PROMPTS_DIR.parent / "tools" / "__init__.py"


def _module(ref: str) -> ModuleType:
    if ref.endswith(".py") or "/" in ref:
        path = Path(ref).resolve()
        if not path.is_file():
            raise ValueError(f"agent file {path} does not exist")
        name = f"agent_runtime_user_{path.stem}_{abs(hash(path)) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pydantic look classes up by module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(ref)


def load_tools(path: Path = DEFAULT_TOOLS_FILE) -> ToolRegistry:
    """The `TOOLS` list of a tools module (a missing file means no tools)."""
    if not path.is_file():
        return ToolRegistry()
    tools = getattr(_module(str(path)), "TOOLS", None)
    if tools is None:
        raise ValueError(f"{path} must define TOOLS = [function, …]")
    return ToolRegistry(tools)


def load_agent(ref: str | None, prompts_dir: Path | None = None) -> Agent:
    """`None` → the default agent (`prompts_dir` or prompts/, plus tools/); else `file.py:name`
    or `package.module:name`, where name is an Agent or a function returning one."""
    if ref is None:
        return Agent.from_prompts(prompts_dir=prompts_dir, tools=load_tools())
    location, _, attr = ref.partition(":")
    target: Any = getattr(_module(location), attr or "agent", None)
    if target is None:
        raise ValueError(f"{location} has no {attr or 'agent'!r}; use --agent path/to/agent.py:name")
    agent = target() if callable(target) and not isinstance(target, Agent) else target
    if not isinstance(agent, Agent):
        raise ValueError(f"{ref} did not give an Agent (got {type(agent).__name__})")
    return agent
