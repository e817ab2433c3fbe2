"""Spoken confirmation is enforced: a `confirm` tool never runs on the model's word alone.

Through the orchestrator, the real `openai` client and the strict local server: the first call
(per distinct arguments) is refused even with confirmed=true; the call runs only after a new
caller message, with the same arguments and confirmed=true.
"""

from __future__ import annotations

import anyio
import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.orchestrator import Orchestrator, Outcome
from agent_runtime.agent.tools import ToolRegistry, tool
from agent_runtime.providers.openai_llm import OpenAILLM
from fakes.openai_server import ToolCall, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio


def _booking_line(client, booked: list[tuple[str, str]]) -> tuple[Orchestrator, Conversation]:  # noqa: ANN001
    @tool(confirm=True)
    def book(day: str, time: str) -> str:
        """Books an appointment."""
        booked.append((day, time))
        return f"booked {day} {time}"

    conversation = Conversation("sys")
    orchestrator = Orchestrator(OpenAILLM(client, "gpt-4o-mini"), ToolRegistry([book]), CallContext("c"), conversation, "Sorry?")
    return orchestrator, conversation


async def _turn(orchestrator: Orchestrator, generation: int) -> list[str]:
    send, recv = anyio.create_memory_object_stream[str](100)
    async with send:
        await orchestrator.respond(generation, send, {}, Outcome())
    return [s async for s in recv]


def _last_result(conversation: Conversation) -> str:
    return next(m["content"] for m in reversed(conversation.messages) if m["role"] == "tool")


async def test_confirmed_true_on_the_first_call_does_not_run_the_function(openai_server, openai_client) -> None:  # noqa: ANN001
    booked: list[tuple[str, str]] = []
    orchestrator, conversation = _booking_line(openai_client, booked)
    conversation.add_user("Book Monday at nine.")
    eager = '{"day": "monday", "time": "09:00", "confirmed": true}'
    openai_server.push_chat(
        tool_call_reply([ToolCall("c1", "book", [eager])]),
        tool_call_reply([ToolCall("c2", "book", [eager])]),  # again, in the same reply: still no caller answer
        text_reply("Monday at nine, shall I book it?"),
    )
    assert await _turn(orchestrator, 1) == ["Monday at nine, shall I book it?"]
    results = [m["content"] for m in conversation.messages if m["role"] == "tool"]
    assert booked == []
    assert "needs the caller's spoken confirmation" in results[0] and "not run" in results[1]

    conversation.add_user("Yes please.")
    openai_server.push_chat(
        # The same booking (keys in another order), confirmed after the caller spoke: it runs once.
        tool_call_reply([ToolCall("c3", "book", ['{"confirmed": true, "time": "09:00", "day": "monday"}'])]),
        text_reply("Booked."),
    )
    assert await _turn(orchestrator, 2) == ["Booked."]
    assert booked == [("monday", "09:00")] and _last_result(conversation) == "booked monday 09:00"


async def test_each_distinct_request_needs_its_own_confirmation(openai_server, openai_client) -> None:  # noqa: ANN001
    booked: list[tuple[str, str]] = []
    orchestrator, conversation = _booking_line(openai_client, booked)
    conversation.add_user("Book Monday at nine.")
    openai_server.push_chat(tool_call_reply([ToolCall("c1", "book", ['{"day": "monday", "time": "09:00"}'])]),
                            text_reply("Monday at nine?"))
    await _turn(orchestrator, 1)
    conversation.add_user("Actually make it ten. Yes.")
    openai_server.push_chat(  # other arguments than the ones the caller was asked about
        tool_call_reply([ToolCall("c2", "book", ['{"day": "monday", "time": "10:00", "confirmed": true}'])]),
        text_reply("Monday at ten, is that right?"))
    await _turn(orchestrator, 2)
    assert booked == [] and "needs the caller's spoken confirmation" in _last_result(conversation)
    conversation.add_user("Yes.")
    openai_server.push_chat(
        tool_call_reply([ToolCall("c3", "book", ['{"day": "monday", "time": "10:00", "confirmed": true}'])]),
        text_reply("Done."))
    await _turn(orchestrator, 3)
    assert booked == [("monday", "10:00")]
    # Confirmed once means once: the same booking again starts over with a question.
    conversation.add_user("Book that again.")
    openai_server.push_chat(
        tool_call_reply([ToolCall("c4", "book", ['{"day": "monday", "time": "10:00", "confirmed": true}'])]),
        text_reply("Again?"))
    await _turn(orchestrator, 4)
    assert booked == [("monday", "10:00")]


async def test_without_the_flag_after_the_answer_the_model_is_asked_again(openai_server, openai_client) -> None:  # noqa: ANN001
    booked: list[tuple[str, str]] = []
    orchestrator, conversation = _booking_line(openai_client, booked)
    conversation.add_user("Book Friday at two.")
    args = '{"day": "friday", "time": "14:00"}'
    openai_server.push_chat(tool_call_reply([ToolCall("c1", "book", [args])]), text_reply("Friday at two?"))
    await _turn(orchestrator, 1)
    conversation.add_user("Yes.")
    openai_server.push_chat(tool_call_reply([ToolCall("c2", "book", [args])]), text_reply("Shall I?"))
    await _turn(orchestrator, 2)
    assert booked == [] and "confirmed=true" in _last_result(conversation)
