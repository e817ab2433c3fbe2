"""Shared by the handoff tests: a support agent with human queues and a scripted handoff."""

from __future__ import annotations

from dataclasses import replace

from agent_runtime.agent.definition import Agent
from fakes.openai_server import FakeOpenAIServer, ToolCall, tool_call_reply

SUMMARY = "Caller wants a refund for order A-17."


def support_agent() -> Agent:
    return replace(Agent.from_prompts(), handoff_queues=("support", "billing"))


def script_handoff(openai_server: FakeOpenAIServer) -> None:
    """The caller asks for a human; the model hands them to `support` with SUMMARY."""
    openai_server.push_transcription("I want to talk to a human about my refund.")
    args = '{"queue": "support", "reason": "caller_requested_human", "summary": "' + SUMMARY + '"}'
    openai_server.push_chat(tool_call_reply([ToolCall("call_h", "transfer_to_human", [args])]))
