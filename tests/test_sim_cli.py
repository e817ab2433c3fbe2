"""`agent-runtime call`: the simulator's report, with the agent's transcript through the runtime API."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent_runtime.config import parse_api_keys
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import REPLY, TRANSCRIPT, StandInLLM, StandInSTT, StandInTTS
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from agent_runtime.sim.transcript import fetch_transcript
from callkit import DATA, SECRET, caller_audio, live_agent

pytestmark = pytest.mark.anyio

KEY = "ak_test_transcripts_0123456789"


async def test_the_simulator_prints_the_agents_transcript_with_a_key() -> None:
    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    async with live_agent(providers, api_keys=parse_api_keys(f"{KEY}:transcripts.read")) as agent:
        result = await place_call(agent.connect_url, CallScript(utterances=[Utterance(caller_audio())]), SECRET)
        text = await fetch_transcript(agent.connect_url, result.call_id, KEY)
        without_key = await fetch_transcript(agent.connect_url, result.call_id, None)
        wrong_key = await fetch_transcript(agent.connect_url, result.call_id, "ak_wrong_key_0123456789")
    assert text.splitlines()[-2:] == [f"  caller: {TRANSCRIPT}", f"  agent : {REPLY}"]
    assert "AGENT_API_KEY" in without_key
    assert "401" in wrong_key


def test_call_against_nothing_fails_with_a_message_not_a_traceback() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "agent_runtime.cli", "call", "http://127.0.0.1:9/rozper/voice", "--wav",
         str(DATA / "librivox_ss_0880.wav")], capture_output=True, text=True, timeout=60,
    )
    assert run.returncode != 0
    assert run.stderr.startswith("call failed:") and "Traceback" not in run.stderr
