"""The booking example end to end: a call books a real row in a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from agent_runtime.agent.loading import load_agent
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from callkit import SECRET, caller_audio, live_agent, speech_seconds
from fakes.openai_server import ToolCall, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio


async def test_a_call_books_an_appointment(openai_server, openai_client, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("BOOKING_DB", str(tmp_path / "book.sqlite3"))
    agent = load_agent("examples/booking/agent.py:build_agent")
    providers = Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())
    openai_server.push_transcription("I'd like an appointment on Tuesday at ten, my name is Ann.", "Yes, please.")
    booking = '{"day": "tuesday", "time": "10:00", "name": "Ann"}'
    openai_server.push_chat(
        # Turn 1: the model asks to book at once (even claiming confirmed=true): refused, not run.
        tool_call_reply([ToolCall("c1", "find_free_slots", ['{"day": "Tuesday"}']),
                         ToolCall("c2", "book_appointment", [booking[:-1] + ', "confirmed": true}'])]),
        text_reply("Tuesday at ten for Ann, shall I book that?"),
        # Turn 2, after the caller's "yes": the same booking, confirmed, runs.
        tool_call_reply([ToolCall("c3", "book_appointment", [booking[:-1] + ', "confirmed": true}'])]),
        text_reply("You're booked for Tuesday at ten."),
    )
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.3, 1.2))])
    async with live_agent(providers, agent) as live:
        await place_call(live.connect_url, script, SECRET)
        record = await live.ended_call()

    with sqlite3.connect(tmp_path / "book.sqlite3") as db:
        rows = db.execute("SELECT day, time, name, phone FROM appointments").fetchall()
    assert rows == [("tuesday", "10:00", "Ann", "+15551230001")]
    results = [m for m in openai_server.chat_requests()[-1]["messages"] if m["role"] == "tool"]
    assert results[0]["content"].startswith("free on tuesday: 09:00, 10:00")
    assert "needs the caller's spoken confirmation" in results[1]["content"]
    assert results[2]["content"].startswith("booked: Ann on tuesday at 10:00")
    users = [m["content"] for m in openai_server.chat_requests()[-1]["messages"] if m["role"] == "user"]
    assert users == ["I'd like an appointment on Tuesday at ten, my name is Ann.", "Yes, please."]
    assert record.transcript[-1] == ("assistant", "You're booked for Tuesday at ten.")
