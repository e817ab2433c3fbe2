"""Turn-taking through the real server and the carrier simulator (SCENARIOS S05-S08).

Real parts: uvicorn + WebSockets, the simulator as an exact carrier (marks echoed when played,
`clear` flushes and echoes), eSpeak NG speaking, real recorded callers, the real `openai`
client against the local server (scripted replies and transcripts).
"""

from __future__ import annotations

import time

from dataclasses import replace

import numpy as np
import pytest

from agent_runtime.agent.definition import Agent
from agent_runtime.audio.vad import VadOptions
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from agent_runtime.sim.script import CallResult
from callkit import SECRET, caller_audio, live_agent, silence, speech_seconds
from fakes.openai_server import ChatStream, Delay, Stall, text_reply

pytestmark = pytest.mark.anyio

LONG_REPLY = (
    "Let me tell you about our opening hours and services. We are open from eight in the morning "
    "until six in the evening on weekdays. On Saturdays we open at nine and close at one. "
    "We offer cleaning, fillings, crowns and emergency appointments every day of the week."
)
TICK_MS = 20


@pytest.fixture
def providers(openai_client) -> Providers:  # noqa: ANN001
    return Providers(stt=OpenAISTT(openai_client), llm=OpenAILLM(openai_client, "gpt-4o-mini"), tts=EspeakTTS())


def _reply_generation(result: CallResult, after_tick: int) -> set[str]:
    """Generation prefixes (`g3`) of the marks the agent sent after `after_tick`."""
    return {detail.split(":")[0] for tick, kind, detail in result.timeline if kind == "mark" and tick > after_tick}


def _generation_of_last_mark_before(result: CallResult, tick: int) -> str:
    marks = [detail for t, kind, detail in result.timeline if kind == "mark" and t <= tick]
    return marks[-1].split(":")[0]


@pytest.mark.parametrize("barge_in_after_s, still_generating", [(4.0, True), (3.6, False)])
async def test_s05_barge_in_sends_one_clear_and_stops_the_reply(
    openai_server, providers, barge_in_after_s: float, still_generating: bool  # noqa: ANN001
) -> None:
    # Still generating: the model streams slowly, so the reply is being written at 4 s.
    # All sent: a short reply whose last audio left the runtime before the caller speaks.
    reply = LONG_REPLY if still_generating else "We are open from eight in the morning until six in the evening, Monday to Friday."
    pieces = [c for piece in text_reply(reply) for c in (piece, Delay(0.15))] if still_generating else text_reply(reply)
    openai_server.push_chat(ChatStream(pieces), text_reply("Of course."))
    openai_server.push_transcription("What are your opening hours?", "Sorry, one more question.")
    talk = speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.3, 1.5)
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(talk, barge_in_after_s=barge_in_after_s)])
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    clears = result.clear_ticks()
    assert len(clears) == 1, result.timeline
    onset = result.speech_onset_ticks[1]
    assert 0 <= (clears[0] - onset) * TICK_MS <= 200
    cut = _generation_of_last_mark_before(result, clears[0])
    assert cut not in _reply_generation(result, clears[0]), "media of the cut reply after the clear"
    last_sent = max(t for t, kind, d in result.timeline if kind == "mark" and d.startswith(cut + ":"))
    assert (last_sent >= onset) is still_generating  # the second run: all had been sent already
    # History holds the heard words of the cut reply: a non-empty, strict prefix.
    second_request = openai_server.chat_requests()[1]["messages"]
    heard = second_request[-2]
    assert heard["role"] == "assistant" and heard["content"]
    heard_words, reply_words = heard["content"].split(), reply.split()
    assert heard_words == reply_words[: len(heard_words)] and len(heard_words) < len(reply_words)
    assert second_request[-1] == {"role": "user", "content": "Sorry, one more question."}
    assert record.barge_ins == 1


async def test_s06_echo_does_not_interrupt(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply(LONG_REPLY))
    openai_server.push_transcription("What are your opening hours?")
    script = CallScript(utterances=[Utterance(caller_audio())], echo_delay_ms=150, echo_gain_db=-12.0)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    assert result.clears == 0 and record.barge_ins == 0
    assert record.transcript[-1] == ("assistant", LONG_REPLY)  # the whole reply played
    assert result.marks_echoed == result.marks_sent
    assert len(openai_server.chat_requests()) == 1  # the echo never became a caller turn


async def test_s06_control_real_speech_over_echo_interrupts(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply(LONG_REPLY), text_reply("Sure."))
    openai_server.push_transcription("What are your opening hours?", "Wait, stop.")
    talk = speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.3, 1.5)
    script = CallScript(
        utterances=[Utterance(caller_audio()), Utterance(talk, barge_in_after_s=2.0, level_dbfs=-12.0)],
        echo_delay_ms=150, echo_gain_db=-12.0,
    )
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        await agent.ended_call()

    clears = result.clear_ticks()
    assert len(clears) == 1
    assert (clears[0] - result.speech_onset_ticks[1]) * TICK_MS <= 300


async def test_short_backchannel_neither_interrupts_nor_leaks(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply(LONG_REPLY))
    openai_server.push_transcription("What are your opening hours?")
    # A ~60 ms "mm" burst while the agent talks.
    burst = speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.45, 0.06)
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(burst, barge_in_after_s=2.0)], hangup_after_s=1.0)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    assert result.clears == 0 and record.barge_ins == 0
    assert record.transcript[-1] == ("assistant", LONG_REPLY)
    assert len(openai_server.chat_requests()) == 1  # the backchannel did not become a turn


async def test_a_backchannel_that_stopped_the_agent_is_a_false_interruption(openai_server, providers) -> None:  # noqa: ANN001
    """A real ~300 ms "uh-huh" is long enough to stop the agent (barge-in must be fast), but it is
    not a turn: the agent says the words the caller missed, and nothing of it reaches the model."""
    openai_server.push_transcription("What are your opening hours?")
    openai_server.push_chat(text_reply(LONG_REPLY))
    openai_server.push_transcription("Uh-huh.")
    word = speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.18, 0.34)  # one real syllable
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(word, barge_in_after_s=3.0)],
                        hangup_after_s=1.0, max_duration_s=60)
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    assert result.clears == 1 and record.barge_ins == 1  # it did stop the agent …
    assert len(openai_server.chat_requests()) == 1  # … but it was not a turn for the model
    assert [text for role, text in record.transcript if role == "user"] == ["What are your opening hours?"]
    *_, heard, resumed = [text for role, text in record.transcript if role == "assistant"]
    words = LONG_REPLY.split()
    assert 0 < len(heard.split()) < len(words)
    assert heard.split() == words[: len(heard.split())]  # what was heard before the clear …
    assert resumed.split() == words[len(heard.split()) :]  # … then exactly the words missed
    # The agent spoke again soon after its end of speech.
    clear_tick = result.clear_ticks()[0]
    resumed_ticks = [tick for tick, kind, _ in result.timeline if kind == "media" and tick > clear_tick]
    assert resumed_ticks and (resumed_ticks[0] - clear_tick) * TICK_MS <= 3000


async def test_a_real_interruption_is_a_new_turn_not_a_resume(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_transcription("What are your opening hours?")
    openai_server.push_chat(text_reply(LONG_REPLY))
    openai_server.push_transcription("Okay but are you open on Sunday?")
    openai_server.push_chat(text_reply("No, we are closed on Sundays."))
    question = speech_seconds(caller_audio("librivox_ss_0870.wav"), 0.18, 1.6)
    script = CallScript(utterances=[Utterance(caller_audio()), Utterance(question, barge_in_after_s=3.0)],
                        hangup_after_s=1.0, max_duration_s=60)
    async with live_agent(providers) as agent:
        await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()
    assert len(openai_server.chat_requests()) == 2
    assert record.transcript[-2:] == [("user", "Okay but are you open on Sunday?"), ("assistant", "No, we are closed on Sundays.")]


def _name_with_pause(pause_s: float) -> np.ndarray:
    """'…dashwood', a mid-sentence pause, then more words: one thought with a gap inside."""
    recording = caller_audio("librivox_ss_0870.wav")
    return np.concatenate([speech_seconds(recording, 0.2, 1.6), silence(pause_s), speech_seconds(recording, 1.9, 0.7)])


async def test_s08_telephony_hangover_keeps_a_pause_inside_one_turn(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply("Nice to meet you, John Doe."))
    openai_server.push_transcription("my name is John Doe")
    script = CallScript(utterances=[Utterance(np.concatenate([_name_with_pause(0.6), silence(2.0)]))])
    async with live_agent(providers) as agent:
        await place_call(agent.connect_url, script, SECRET)
        record = await agent.ended_call()

    user_turns = [text for role, text in record.transcript if role == "user"]
    assert user_turns == ["my name is John Doe"]
    assert len(openai_server.chat_requests()) == 1


async def test_s08_short_hangover_recovers_after_an_early_turn_end(openai_server, providers) -> None:  # noqa: ANN001
    early = [c for piece in text_reply("Thanks John, and how can I help you today?") for c in (Delay(0.3), piece)]
    openai_server.push_chat(ChatStream(early), text_reply("Nice to meet you, John Doe."))
    openai_server.push_transcription("my name is John", "Doe")
    agent = replace(Agent.from_prompts(), vad=replace(VadOptions.telephony(), hangover_ms=500))
    script = CallScript(utterances=[Utterance(np.concatenate([_name_with_pause(0.6), silence(2.0)]))])
    async with live_agent(providers, agent) as live:
        result = await place_call(live.connect_url, script, SECRET)
        record = await live.ended_call()

    # Two turns; "Doe" cut the early reply; the next reply's audio came ≤ 3 s after "Doe" ended.
    assert [text for role, text in record.transcript if role == "user"] == ["my name is John", "Doe"]
    assert record.turns[-1].reply_text == "Nice to meet you, John Doe."
    assert result.turn_latencies_ms and result.turn_latencies_ms[-1] <= 3000
    assert record.transcript[-1] == ("assistant", "Nice to meet you, John Doe.")


async def test_watchdog_speaks_when_the_model_stalls(openai_server, providers) -> None:  # noqa: ANN001
    openai_server.push_chat(Stall(seconds=30))
    openai_server.push_transcription("What are your opening hours?")
    async with live_agent(providers) as agent:
        result = await place_call(agent.connect_url, CallScript(utterances=[Utterance(caller_audio())]), SECRET)
        record = await agent.ended_call()

    # The caller heard the fallback line within ~2.5 s instead of dead air …
    assert result.turn_latencies_ms and result.turn_latencies_ms[0] <= 3000 + 800
    # … and the fallback is not in history as something the model said.
    assert [role for role, _ in record.transcript] == ["assistant", "user"]


async def test_dtmf_reaches_the_agent_in_order_and_fast(openai_server, providers) -> None:  # noqa: ANN001
    received: list[tuple[float, str]] = []

    def on_dtmf(digit: str, _ctx: object) -> None:  # sync: the runtime calls it in a worker thread
        received.append((time.monotonic(), digit))  # asyncio's clock (anyio.current_time) is monotonic

    openai_server.push_chat(text_reply("You pressed one two three."))
    agent = replace(Agent.from_prompts(), on_dtmf=on_dtmf)
    # Keys pressed during the greeting, before the caller has said anything.
    script = CallScript(utterances=[], dtmf=[(0.5, "1"), (0.6, "2"), (0.7, "#")], hangup_after_s=0.5, max_duration_s=8)
    async with live_agent(providers, agent) as live:
        result = await place_call(live.connect_url, script, SECRET)
        await live.ended_call()

    assert [d for _, d in received] == ["1", "2", "#"]
    for (sent_at, _), (got_at, _) in zip(result.dtmf_sent, received):
        assert got_at - sent_at < 0.1
    # The model gets the entry as one input, sent at `#`: one request, not one per key.
    [request] = openai_server.chat_requests()
    users = [m["content"] for m in request["messages"] if m["role"] == "user"]
    assert users == ["(the caller pressed 12# on the keypad)"]


async def test_a_keyed_in_number_is_one_input_and_one_interruption(openai_server, providers) -> None:  # noqa: ANN001
    """16 keys typed during a reply: one `clear`, one model request with all of them, in order."""
    openai_server.push_chat(text_reply("Thanks, I have your card number."))
    keys = "4111111111111111"
    script = CallScript(utterances=[], dtmf=[(1.0 + 0.25 * i, k) for i, k in enumerate(keys)], hangup_after_s=0.5,
                        max_duration_s=15)
    async with live_agent(providers) as live:
        result = await place_call(live.connect_url, script, SECRET)
        await live.ended_call()
    assert result.clears == 1  # the greeting was cut once; later keys found the agent listening
    [request] = openai_server.chat_requests()
    assert request["messages"][-1] == {"role": "user", "content": f"(the caller pressed {keys} on the keypad)"}


def _hold_music(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    melody = np.sin(2 * np.pi * 440 * t) + 0.6 * np.sin(2 * np.pi * 660 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    return (melody * 0.1 * 32767 / 1.6).astype(np.int16)


@pytest.mark.parametrize("action", ["end_turn", "discard"])
async def test_hold_music_cannot_keep_a_turn_open(openai_server, providers, action: str) -> None:  # noqa: ANN001
    openai_server.push_chat(text_reply("Are you still there?"))
    agent = Agent.from_prompts()
    agent = replace(agent, turns=replace(agent.turns, max_turn_s=2.0, max_turn_action=action))
    script = CallScript(utterances=[Utterance(_hold_music(3.0))], hangup_after_s=1.0, reply_timeout_s=6, max_duration_s=15)
    async with live_agent(providers, agent) as live:
        await place_call(live.connect_url, script, SECRET)
        await live.ended_call()

    uploads = [r.files for r in openai_server.requests if r.path.endswith("/transcriptions")]
    if action == "discard":
        assert uploads == []
    else:
        assert len(uploads) >= 1
        wav = next(iter(uploads[0].values()))
        assert (len(wav) - 44) / 2 / 8000 <= 2.0 + 0.3 + 0.1  # the turn was cut at max_turn_s (+ pre-roll)


@pytest.mark.parametrize(
    "field, value",
    [("barge_in_min_speech_ms", 5), ("echo_margin_db", -1.0), ("max_turn_s", 0.0),
     ("max_turn_action", "hang_up"), ("no_audio_timeout_s", 100.0), ("preroll_ms", 5000)],
)
def test_turn_options_are_validated_with_clear_errors(field: str, value: object) -> None:
    from agent_runtime.call.turns import TurnOptions

    with pytest.raises(ValueError, match=f"turn option {field} must be"):
        TurnOptions(**{field: value})
