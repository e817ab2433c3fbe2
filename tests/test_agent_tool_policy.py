"""Tool policy during a reply: the filler line that covers a slow tool, and `Outcome.tools_running`.

Through the orchestrator, the real `openai` client and the strict local server.
"""

from __future__ import annotations

import anyio
import pytest

from agent_runtime.agent.context import CallContext
from agent_runtime.agent.history import Conversation
from agent_runtime.agent.orchestrator import CANCELLED, Orchestrator, Outcome
from agent_runtime.agent.tools import ToolRegistry, tool
from agent_runtime.providers.openai_llm import OpenAILLM
from fakes.openai_server import ToolCall, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio
FALLBACK = "Sorry, could you say that again?"


async def _respond_timed(client, tools: list, **kwargs: object) -> tuple[list[tuple[float, str]], Conversation, Outcome]:  # noqa: ANN001
    """Runs one reply; every piece sent to TTS with the time it was sent."""
    conversation = Conversation("You are a test agent.")
    conversation.add_user("Hello")
    orchestrator = Orchestrator(OpenAILLM(client, "gpt-4o-mini"), ToolRegistry(tools), CallContext("call_1"),
                                conversation, FALLBACK, **kwargs)  # type: ignore[arg-type]
    send, recv = anyio.create_memory_object_stream[str](100)
    outcome = Outcome()
    heard: list[tuple[float, str]] = []

    async def listen() -> None:
        async with recv:
            async for piece in recv:
                heard.append((anyio.current_time(), piece))

    async with anyio.create_task_group() as tg:
        tg.start_soon(listen)
        async with send:
            await orchestrator.respond(1, send, {}, outcome)
    return heard, conversation, outcome


async def test_a_slow_tool_without_a_filler_gets_the_default_line_within_2_s(openai_server, openai_client) -> None:  # noqa: ANN001
    started: list[float] = []

    @tool
    async def look_up_order(order_id: str) -> str:
        """Looks an order up (slowly)."""
        started.append(anyio.current_time())
        await anyio.sleep(2.5)
        return "shipped"

    openai_server.push_chat(tool_call_reply([ToolCall("call_o", "look_up_order", ['{"order_id": "A-17"}'])]),
                            text_reply("Your order has shipped."))
    heard, conversation, _ = await _respond_timed(openai_client, [look_up_order])
    assert [piece for _, piece in heard] == ["One moment, please.", "Your order has shipped."]
    assert 1.3 <= heard[0][0] - started[0] <= 2.0  # the caller waits at most ~2 s in silence
    # The filler is spoken, not written into history: the model sees only its own words.
    assert all("One moment" not in str(m.get("content")) for m in conversation.messages)


async def test_fillers_follow_the_policy(openai_server, openai_client) -> None:  # noqa: ANN001
    @tool(filler="Let me check the calendar.", filler_after_ms=200)
    async def check_calendar(day: str) -> str:
        """Checks the calendar."""
        await anyio.sleep(0.6)
        return "free"

    @tool(filler="")  # explicitly silent
    async def quiet_lookup(key: str) -> str:
        """A lookup that says nothing while it runs."""
        await anyio.sleep(1.8)
        return "found"

    @tool
    async def quick(key: str) -> str:
        """Answers at once: no filler is due."""
        return "ok"

    openai_server.push_chat(tool_call_reply([ToolCall("call_c", "check_calendar", ['{"day": "mon"}'])]), text_reply("Monday is free."),
                            tool_call_reply([ToolCall("call_q", "quiet_lookup", ['{"key": "k"}'])]), text_reply("Found it."),
                            tool_call_reply([ToolCall("call_k", "quick", ['{"key": "k"}'])]), text_reply("Done."))
    heard, _, _ = await _respond_timed(openai_client, [check_calendar, quiet_lookup, quick])
    assert [piece for _, piece in heard] == ["Let me check the calendar.", "Monday is free."]
    heard, _, _ = await _respond_timed(openai_client, [check_calendar, quiet_lookup, quick])
    assert [piece for _, piece in heard] == ["Found it."]
    heard, _, _ = await _respond_timed(openai_client, [check_calendar, quiet_lookup, quick], filler_line="Hang on.")
    assert [piece for _, piece in heard] == ["Done."]


async def test_the_agents_filler_line_is_used(openai_server, openai_client) -> None:  # noqa: ANN001
    @tool(filler_after_ms=100)
    async def slow(key: str) -> str:
        """Slow."""
        await anyio.sleep(0.4)
        return "ok"

    openai_server.push_chat(tool_call_reply([ToolCall("call_s", "slow", ['{"key": "k"}'])]), text_reply("Done."))
    heard, _, _ = await _respond_timed(openai_client, [slow], filler_line="Bear with me, Ann.")
    assert [piece for _, piece in heard] == ["Bear with me, Ann.", "Done."]


async def test_tools_running_is_true_exactly_while_tools_execute(openai_server, openai_client) -> None:  # noqa: ANN001
    outcome = Outcome()
    seen: list[bool] = []

    @tool(filler="")
    async def watch(key: str) -> str:
        """Reports what the outcome said while it ran."""
        seen.append(outcome.tools_running)
        return "ok"

    @tool(filler="")
    async def hang(key: str) -> str:
        """Never answers."""
        await anyio.sleep_forever()
        return ""

    llm_seen: list[bool] = []

    class WatchingLLM(OpenAILLM):
        def stream(self, messages, tools=None):  # noqa: ANN001, ANN202
            llm_seen.append(outcome.tools_running)
            return super().stream(messages, tools)

    conversation = Conversation("sys")
    conversation.add_user("Hello")
    orchestrator = Orchestrator(WatchingLLM(openai_client, "m"), ToolRegistry([watch, hang]), CallContext("c"), conversation, FALLBACK)
    openai_server.push_chat(tool_call_reply([ToolCall("call_w", "watch", ['{"key": "k"}'])]), text_reply("Done."))
    send, recv = anyio.create_memory_object_stream[str](100)
    await orchestrator.respond(1, send, {}, outcome)
    assert seen == [True] and llm_seen == [False, False] and outcome.tools_running is False

    # Cut short by a barge-in while a tool hangs: the flag is reset all the same (try/finally).
    conversation.add_user("Again")
    openai_server.push_chat(tool_call_reply([ToolCall("call_h", "hang", ['{"key": "k"}'])]))
    flags: list[bool] = []
    with anyio.move_on_after(0.5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(orchestrator.respond, 2, send, {}, outcome)
            await anyio.sleep(0.3)
            flags.append(outcome.tools_running)
    assert flags == [True] and outcome.tools_running is False
    assert conversation.messages[-1] == {"role": "tool", "tool_call_id": "call_h", "content": CANCELLED}
