"""The LLM loop with tools, through the real `openai` client against the strict local server.

The server validates every request as OpenAI does (tool_call_id pairing, JSON arguments), so
"the next request is valid" is checked by a real HTTP round trip, not by inspection alone.
"""

from __future__ import annotations

import json

import anyio
import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.orchestrator import CANCELLED, Orchestrator, Outcome
from agent_runtime.agent.tools import ToolRegistry, tool
from agent_runtime.providers.openai_llm import OpenAILLM
from fakes.openai_server import (
    ChatStream, HttpError, RawSSE, ToolCall, finish_chunk, role_chunk, text_chunk, text_reply,
    tool_call_fragment, tool_call_reply,
)

pytestmark = pytest.mark.anyio
FALLBACK = "Sorry, could you say that again?"


async def _respond(client, tools: list, max_rounds: int = 4) -> tuple[list[str], Conversation, Outcome]:  # noqa: ANN001
    conversation = Conversation("You are a test agent.")
    conversation.add_user("Hello")
    orchestrator = Orchestrator(OpenAILLM(client, "gpt-4o-mini"), ToolRegistry(tools), CallContext("call_1", caller="+15551230001"),
                                conversation, FALLBACK, max_rounds)
    send, recv = anyio.create_memory_object_stream[str](100)
    outcome = Outcome()
    async with send:
        await orchestrator.respond(1, send, {}, outcome)
    said = [s async for s in recv]
    return said, conversation, outcome


def _tool_messages(conversation: Conversation) -> list[dict]:
    return [m for m in conversation.messages if m["role"] == "tool"]


async def test_s09_fragmented_arguments_run_once(openai_server, openai_client) -> None:  # noqa: ANN001
    calls: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return "sunny, 25 degrees"

    openai_server.push_chat(tool_call_reply([ToolCall("call_w", "get_weather", ['{"ci', 'ty": "Par', 'is"}'])]),
                            text_reply("It is sunny in Paris."))
    said, conversation, _ = await _respond(openai_client, [get_weather])
    assert calls == ["Paris"]
    assistant = next(m for m in conversation.messages if m.get("tool_calls"))
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert _tool_messages(conversation) == [{"role": "tool", "tool_call_id": "call_w", "content": "sunny, 25 degrees"}]
    assert said == ["It is sunny in Paris."]
    assert openai_server.chat_requests()[1]["messages"][-1]["tool_call_id"] == "call_w"


@pytest.mark.parametrize("fragments", [(), None], ids=["empty-string", "no-arguments-key"])
async def test_s10_no_argument_tool(openai_server, openai_client, fragments) -> None:  # noqa: ANN001
    runs: list[int] = []

    @tool
    async def get_time() -> str:
        """The current time."""
        runs.append(1)
        return "15:04"

    openai_server.push_chat(tool_call_reply([ToolCall("call_t", "get_time", fragments)]), text_reply("It is 3:04 pm."))
    said, conversation, _ = await _respond(openai_client, [get_time])
    assert runs == [1]
    assistant = next(m for m in conversation.messages if m.get("tool_calls"))
    assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"
    assert said == ["It is 3 oh 4 pm."]
    json.dumps(openai_server.chat_requests()[1])  # the follow-up request went through the strict server


async def test_parallel_calls_run_concurrently_and_share_index_safely(openai_server, openai_client) -> None:  # noqa: ANN001
    @tool
    async def slow_lookup(key: str) -> str:
        """Looks a key up slowly."""
        await anyio.sleep(0.5)
        return key.upper()

    chunks = [role_chunk(),
              tool_call_fragment(0, id="call_a", name="slow_lookup", arguments='{"key": "a"}'),
              tool_call_fragment(0, id="call_b", name="slow_lookup", arguments='{"key": "b"}'),  # same index, new id
              tool_call_fragment(1, id="call_c", name="slow_lookup", arguments='{"key": "c"}'),
              finish_chunk("tool_calls")]
    openai_server.push_chat(chunks, text_reply("Done."))
    started = anyio.current_time()
    _, conversation, outcome = await _respond(openai_client, [slow_lookup])
    assert anyio.current_time() - started < 1.2  # three 0.5 s tools at once, not one after another
    assert outcome.tool_calls == 3
    assert [(m["tool_call_id"], m["content"]) for m in _tool_messages(conversation)] == [
        ("call_a", "A"), ("call_b", "B"), ("call_c", "C")]


async def test_unknown_tool_and_invalid_arguments_go_back_to_the_model(openai_server, openai_client) -> None:  # noqa: ANN001
    ran: list[int] = []

    @tool
    def book(day: str, hour: int) -> str:
        """Book a slot."""
        ran.append(hour)
        return "booked"

    openai_server.push_chat(
        tool_call_reply([ToolCall("call_x", "launch_rocket", ['{}']), ToolCall("call_y", "book", ['{"day": "mon", "hour": "noon"}'])],
                        text=["Let me see. "]),
        text_reply("I could not do that."),
    )
    said, conversation, _ = await _respond(openai_client, [book])
    results = {m["tool_call_id"]: m["content"] for m in _tool_messages(conversation)}
    assert results["call_x"] == "error: there is no tool named 'launch_rocket'"
    assert results["call_y"].startswith("error: invalid arguments for book: hour")
    assert ran == [] and said == ["Let me see.", "I could not do that."]
    assert next(m for m in conversation.messages if m.get("tool_calls"))["content"] == "Let me see. "


async def test_rounds_are_bounded(openai_server, openai_client) -> None:  # noqa: ANN001
    @tool
    def again() -> str:
        """Always call me again."""
        return "call me again"

    for i in range(3):
        openai_server.push_chat(tool_call_reply([ToolCall(f"call_{i}", "again", ["{}"])]))
    openai_server.push_chat(text_reply("Enough."))
    said, _, outcome = await _respond(openai_client, [again], max_rounds=4)
    requests = openai_server.chat_requests()
    assert len(requests) == 4 and "tools" not in requests[-1]  # the last round must answer in words
    assert outcome.tool_calls == 3 and said == ["Enough."]


async def test_s11_hanging_tool_is_cancelled_at_its_timeout(openai_server, openai_client) -> None:  # noqa: ANN001
    times: list[float] = []

    @tool(timeout_s=2.0)
    async def check_inventory(item: str) -> str:
        """Checks stock."""
        times.append(anyio.current_time())
        try:
            await anyio.sleep_forever()
        finally:
            times.append(anyio.current_time())
        return ""

    openai_server.push_chat(tool_call_reply([ToolCall("call_i", "check_inventory", ['{"item": "tea"}'])]),
                            text_reply("Sorry, I could not check the stock right now."))
    said, conversation, _ = await _respond(openai_client, [check_inventory])
    assert 1.7 <= times[1] - times[0] <= 2.3
    assert _tool_messages(conversation)[0]["content"] == "error: check_inventory did not answer within 2 s"
    # The default filler covered the wait (at 1.5 s), then the reply.
    assert said == ["One moment, please.", "Sorry, I could not check the stock right now."]


async def test_interrupted_tools_each_get_exactly_one_result(openai_server, openai_client) -> None:  # noqa: ANN001
    done: list[str] = []

    @tool
    async def book_slot(day: str) -> str:
        """Books a slot (slow)."""
        await anyio.sleep(10)
        return "booked"

    @tool(interruptible=False)
    async def save_note(text: str) -> str:
        """Saves a note; must not be lost."""
        await anyio.sleep(0.6)
        done.append(text)
        return "saved"

    openai_server.push_chat(tool_call_reply([ToolCall("call_b", "book_slot", ['{"day": "mon"}']),
                                             ToolCall("call_n", "save_note", ['{"text": "hi"}'])]))
    conversation = Conversation("sys")
    conversation.add_user("Book monday")
    orchestrator = Orchestrator(OpenAILLM(openai_client, "m"), ToolRegistry([book_slot, save_note]), CallContext("c"),
                                conversation, FALLBACK)
    send, recv = anyio.create_memory_object_stream[str](100)
    with anyio.move_on_after(0.3):  # the caller barges in 0.3 s into the tools
        await orchestrator.respond(1, send, {}, Outcome())
    results = {m["tool_call_id"]: m["content"] for m in _tool_messages(conversation)}
    assert results == {"call_b": CANCELLED, "call_n": "saved"} and done == ["hi"]  # kept, run once
    # The next request is valid for a strict server.
    conversation.add_user("actually never mind")
    openai_server.push_chat(text_reply("No problem."))
    said, _, _ = await _respond_with(openai_client, conversation)
    assert said == ["No problem."] and openai_server.chat_requests()[-1]["messages"][-1]["content"] == "actually never mind"


async def _respond_with(client, conversation: Conversation) -> tuple[list[str], Conversation, Outcome]:  # noqa: ANN001
    orchestrator = Orchestrator(OpenAILLM(client, "m"), ToolRegistry(), CallContext("c"), conversation, FALLBACK)
    send, recv = anyio.create_memory_object_stream[str](100)
    outcome = Outcome()
    async with send:
        await orchestrator.respond(2, send, {}, outcome)
    return [s async for s in recv], conversation, outcome


@pytest.mark.parametrize(
    "failure",
    [HttpError(429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "30"}),
     HttpError(400, {"error": {"message": "bad", "type": "invalid_request_error"}}),
     ChatStream([role_chunk(), RawSSE("data: {not json}\n\n")]),
     ChatStream([role_chunk()], done=False)],
    ids=["429-long-retry-after", "400", "malformed-chunk", "dropped-stream"],
)
async def test_provider_faults_speak_the_fallback_not_into_history(openai_server, openai_client, failure) -> None:  # noqa: ANN001
    openai_server.push_chat(failure, failure)
    said, conversation, outcome = await _respond(openai_client, [])
    assert said == [FALLBACK] and outcome.failed
    assert [m["role"] for m in conversation.messages] == ["system", "user"]


@pytest.mark.parametrize(
    "fault",
    [HttpError(503, {"error": {"message": "busy", "type": "server_error"}}),
     HttpError(500, {"error": {"message": "oops", "type": "server_error"}}),
     HttpError(429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "0.1"})],
    ids=["503", "500", "429-retry-after-0.1"],
)
async def test_a_transient_fault_is_retried_once_quickly(openai_server, openai_client, fault) -> None:  # noqa: ANN001
    openai_server.push_chat(fault, text_reply("Here I am."))
    started = anyio.current_time()
    said, conversation, outcome = await _respond(openai_client, [])
    assert said == ["Here I am."] and not outcome.failed  # the reply spoken; no fallback line
    assert len(openai_server.chat_requests()) == 2  # exactly one retry
    assert anyio.current_time() - started < 1.0  # quick: no SDK backoff, no long wait
    assert conversation.messages[-1] == {"role": "assistant", "content": "Here I am."}


async def test_a_retry_after_0_1_waits_before_the_retry(openai_server, openai_client) -> None:  # noqa: ANN001
    openai_server.push_chat(HttpError(429, headers={"Retry-After": "0.1"}), text_reply("Here I am."))
    started = anyio.current_time()
    said, _, _ = await _respond(openai_client, [])
    assert said == ["Here I am."] and anyio.current_time() - started >= 0.1


async def test_malformed_tool_arguments_do_not_poison_later_requests(openai_server, openai_client) -> None:  # noqa: ANN001
    ran: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        ran.append(city)
        return "sunny"

    openai_server.push_chat(tool_call_reply([ToolCall("call_w", "get_weather", ['{"city": "Par'])]),  # cut-off JSON
                            text_reply("Which city did you mean?"), text_reply("Paris is sunny."))
    conversation = Conversation("You are a test agent.")
    conversation.add_user("Weather?")
    orchestrator = Orchestrator(OpenAILLM(openai_client, "m"), ToolRegistry([get_weather]), CallContext("c"), conversation, FALLBACK)
    said = await _turn(orchestrator, 1)
    assert said == ["Which city did you mean?"] and ran == []
    assistant = next(m for m in conversation.messages if m.get("tool_calls"))
    assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"  # valid JSON in history
    assert _tool_messages(conversation)[0]["content"].startswith("error: invalid arguments for get_weather")
    conversation.add_user("Paris")
    said = await _turn(orchestrator, 2)  # the second turn's request passes the strict server too
    assert said == ["Paris is sunny."]
    assert len(openai_server.chat_requests()) == 3


async def _turn(orchestrator: Orchestrator, generation: int) -> list[str]:
    send, recv = anyio.create_memory_object_stream[str](100)
    async with send:
        await orchestrator.respond(generation, send, {}, Outcome())
    return [s async for s in recv]


async def test_stream_that_stops_midway_keeps_what_was_said(openai_server, openai_client) -> None:  # noqa: ANN001
    openai_server.push_chat(ChatStream([role_chunk(), text_chunk("We open at nine. "), text_chunk("And we")], done=False))
    said, conversation, outcome = await _respond(openai_client, [])
    assert said[0] == "We open at nine." and not outcome.failed
    assert conversation.messages[-1]["content"].startswith("We open at nine.")
