"""History after an interruption keeps exactly what the caller heard, and nothing else moves."""

from __future__ import annotations

from agent_runtime.agent.history import Conversation


def test_an_unheard_reply_is_removed_and_an_identical_earlier_one_stays() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Can you hear me?")
    conversation.add_assistant(1, "Okay.", (0, 1))
    conversation.add_user("And now?")
    conversation.add_assistant(2, "Okay.", (0, 1))  # the same words, a later generation
    conversation.cut_to_heard(2, 0, ["Okay."])  # interrupted before a word of it was heard
    assert conversation.messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Can you hear me?"},
        {"role": "assistant", "content": "Okay."},  # generation 1's, still in its place
        {"role": "user", "content": "And now?"},
    ]


def test_a_reply_keeps_the_words_heard_and_tool_calls_keep_their_message() -> None:
    conversation = Conversation("sys")
    conversation.add_user("Weather?")
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    conversation.add_assistant(3, "Let me check. ", (0, 3), [call])
    conversation.add_tool_result("c1", "sunny")
    conversation.add_assistant(3, "It is sunny with a high of 25.", (3, 10))
    words = "Let me check. It is sunny with a high of 25.".split()
    conversation.cut_to_heard(3, 1, words)  # only "Let" was heard
    assert conversation.messages[2] == {"role": "assistant", "content": "Let", "tool_calls": [call]}
    assert [m["role"] for m in conversation.messages] == ["system", "user", "assistant", "tool"]


def test_user_turns_counts_caller_messages() -> None:
    conversation = Conversation("sys")
    conversation.add_user("one")
    conversation.add_assistant(1, "Hi.", (0, 1))
    conversation.add_user("two")
    assert conversation.user_turns == 2
