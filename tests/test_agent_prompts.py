"""Every line the agent speaks is a template file in prompts/, loaded by the same rules."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.definition import DEFAULT_PROMPTS_DIR, PROMPT_FILES, Agent, render_template

REQUIRED = {"system.txt": "You help callers of {business_name}.", "greeting.txt": "Hello {caller}.",
            "fallback.txt": "Sorry, once more?"}


def _folder(tmp_path: Path, **files: str) -> Path:
    for name, text in {**REQUIRED, **files}.items():
        (tmp_path / name).write_text(text + "\n", encoding="utf-8")
    return tmp_path


def test_the_shipped_prompt_files_keep_the_defaults() -> None:
    shipped = Agent.from_prompts()
    defaults = {f.name: f.default for f in fields(Agent)}
    for key in ("goodbye_line", "handoff_line", "transfer_failed_line", "filler_line"):
        assert (DEFAULT_PROMPTS_DIR / PROMPT_FILES[key][0]).is_file(), key
        assert getattr(shipped, key) == defaults[key], key


def test_every_spoken_line_loads_from_its_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path, **{"goodbye.txt": "Bye from {business_name}.", "handoff.txt": "Passing you to {queue_name}.",
                                  "transfer_failed.txt": "No one is free, {caller}.", "filler.txt": "Hang on a second."})
    agent = Agent.from_prompts(prompts_dir=folder, variables={"queue_name": "billing"})
    assert agent.goodbye_line == "Bye from {business_name}."
    assert agent.handoff_line == "Passing you to {queue_name}."
    assert agent.transfer_failed_line == "No one is free, {caller}."
    assert agent.filler_line == "Hang on a second."
    context = CallContext("c1", caller="+15551230001")
    assert render_template(agent.handoff_line, context, agent.variables) == "Passing you to billing."
    assert render_template(agent.transfer_failed_line, context, agent.variables) == "No one is free, +15551230001."


def test_missing_optional_files_keep_defaults_and_keywords_win(tmp_path: Path) -> None:
    folder = _folder(tmp_path, **{"handoff.txt": "From the file."})
    agent = Agent.from_prompts(prompts_dir=folder, handoff_line="From the code.")
    assert agent.handoff_line == "From the code."
    assert agent.transfer_failed_line == Agent.__dataclass_fields__["transfer_failed_line"].default


@pytest.mark.parametrize("filename", ["handoff.txt", "transfer_failed.txt", "filler.txt"])
def test_a_broken_template_fails_at_load_time(tmp_path: Path, filename: str) -> None:
    folder = _folder(tmp_path, **{filename: "Transferring you {now"})
    with pytest.raises(ValueError, match="not a valid template"):
        Agent.from_prompts(prompts_dir=folder)


def test_a_missing_required_file_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "greeting.txt").unlink()
    with pytest.raises(ValueError, match="greeting.txt is missing"):
        Agent.from_prompts(prompts_dir=folder)
